"""Credentials: dashboard users (scrypt, per-user salt, constant-time compare), roles
bound correctly, the user and token commands, the failure limiter, and how the app
mounts the dashboard and /metrics when (and only when) they exist."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from poolwarden.adapters.memory import MemoryStore
from poolwarden.core.errors import InputError, StoreError
from poolwarden.http import app as app_module
from poolwarden.http.ratelimit import FailureLimiter
from poolwarden.main import app as cli
from poolwarden.services.access import auth
from poolwarden.services.access.auth import Role
from tests.http.conftest import A, Api


def test_passwords_are_salted_scrypt_and_verified() -> None:
    store = MemoryStore()
    one = auth.create_user(store, name="ann", password="correct horse", role="operator-write",
                           now=1.0)
    two = auth.create_user(store, name="bob", password="correct horse", role="tenant",
                           tenant=A, now=1.0, known_tenants={A})
    assert one.salt != two.salt and one.password_hash != two.password_hash
    assert "correct horse" not in repr(one)
    found = auth.verify_password(store, "ann", "correct horse")
    assert found == auth.Principal(name="user:ann", role=Role.OPERATOR_WRITE)
    assert auth.verify_password(store, "bob", "correct horse") == auth.Principal(
        name="user:bob", role=Role.TENANT, tenant=A)
    assert auth.verify_password(store, "ann", "correct horsE") is None
    assert auth.verify_password(store, "nobody", "correct horse") is None
    assert auth.verify_password(store, "x" * 10_000, "correct horse") is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"role": "admin"}, "role"),
    ({"role": "tenant"}, "tenant"),
    ({"role": "tenant", "tenant": "ghost"}, "tenant"),
    ({"role": "operator-read", "tenant": A}, "tenant"),
    ({"role": "operator-read", "password": "short"}, "password"),
    ({"role": "operator-read", "name": "\x1b[31m"}, "name"),
])
def test_bad_users_are_refused_with_the_field(kwargs: dict, field: str) -> None:
    args = {"name": "u", "password": "long enough!", "now": 0.0, "known_tenants": {A},
            **kwargs}
    with pytest.raises(InputError) as caught:
        auth.create_user(MemoryStore(), **args)
    assert caught.value.field == field


def test_a_user_name_is_taken_once() -> None:
    store = MemoryStore()
    auth.create_user(store, name="ann", password="long enough!", role="operator-read", now=0)
    with pytest.raises(StoreError):
        auth.create_user(store, name="ann", password="long enough!", role="operator-read",
                         now=0)


def test_user_commands_add_list_remove_with_audit(api: Api, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a long password\n")
    runner = CliRunner()
    conf = ["-c", str(api.config_file)]
    added = runner.invoke(cli, ["user", "add", "ann", "--role", "tenant", "--tenant", A,
                                "--password-file", str(secret), *conf])
    assert added.exit_code == 0, added.output
    assert auth.verify_password(api.store, "ann", "a long password") is not None
    prompted = runner.invoke(cli, ["user", "add", "bob", "--role", "operator-read", *conf],
                             input="another password\nanother password\n")
    assert prompted.exit_code == 0, prompted.output
    listed = json.loads(runner.invoke(cli, ["user", "list", "--json", *conf]).stdout)
    assert [(u["name"], u["role"], u["tenant"]) for u in listed] == [
        ("ann", "tenant", A), ("bob", "operator-read", None)]
    assert "hash" not in json.dumps(listed) and "salt" not in json.dumps(listed)
    assert runner.invoke(cli, ["user", "remove", "ann", *conf]).exit_code == 0
    assert auth.verify_password(api.store, "ann", "a long password") is None
    missing = runner.invoke(cli, ["user", "remove", "ann", *conf])
    assert missing.exit_code == 2 and "no user 'ann'" in missing.output
    bad = runner.invoke(cli, ["user", "add", "eve", "--role", "tenant", "--tenant", "ghost",
                              "--password-file", str(secret), *conf])
    assert bad.exit_code == 2 and "unknown tenant 'ghost'" in bad.output
    actions = [r["action"] for r in api.get("/api/v1/audit").json()]
    assert actions == ["user.remove", "user.add", "user.add"]


def test_the_limiter_counts_failures_per_key_in_a_window() -> None:
    now = [0.0]
    limiter = FailureLimiter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.blocked("a") is None
        limiter.failed("a")
    assert limiter.blocked("a") == 60
    assert limiter.blocked("b") is None  # another client is not affected
    now[0] = 59.5
    assert limiter.blocked("a") == 1.0
    now[0] = 60.0
    assert limiter.blocked("a") is None  # the window slid past the failures
    assert limiter.refused == 2


def test_optional_parts_mount_only_when_they_exist(monkeypatch) -> None:
    assert app_module.optional_module("poolwarden.http.no_such_part") is None

    def broken_part(name: str) -> None:  # the part exists, one of its imports does not
        raise ModuleNotFoundError("No module named 'jinja3'", name="jinja3")

    monkeypatch.setattr(app_module, "importlib", SimpleNamespace(import_module=broken_part))
    with pytest.raises(ModuleNotFoundError):  # an error, not a silently missing dashboard
        app_module.optional_module("poolwarden.http.web")
