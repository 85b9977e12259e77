"""S4: tokens are random, shown once, stored only as a hash and a short prefix, and a
revoked token is refused at its next request. The database is dumped (SQLite and
PostgreSQL), with the log of the requests. ASVS 6.5.2, 11.4.1, 8.3.2, 16.2.5."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select
from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.main import app as cli
from poolwarden.services.access import auth
from tests.adapters.conftest import fresh_pg_database
from tests.http.conftest import Api


def dump_sqlite(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def dump_sql(url: str) -> str:
    store = open_store(url)
    try:
        meta = MetaData()
        meta.reflect(store.engine)
        with store.engine.connect() as conn:
            return "\n".join(repr(tuple(row)) for table in meta.sorted_tables
                             for row in conn.execute(select(table)))
    finally:
        store.close()


def test_a_token_carries_256_random_bits_and_looks_like_one() -> None:
    from poolwarden.adapters.memory import MemoryStore

    store = MemoryStore()
    secrets = {auth.create_token(store, name=f"t{i}", role="operator-read", created_by="x",
                                 now=0.0).secret for i in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert re.fullmatch(r"pw_[A-Za-z0-9_-]{43}", secret)
        assert len(base64.urlsafe_b64decode(secret[3:] + "=")) == 32


def test_the_store_holds_a_hash_and_a_prefix_never_the_token(api: Api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = list(api.tokens.values())
    for token in api.tokens:
        assert api.get("/api/v1/overrides", token=token).status_code == 200
    api.get("/api/v1/pools", token="tenant-a")  # a refusal: logged and audited
    api.get("/api/v1/pools", token=secrets[0][:-2] + "xx")  # a wrong token: 401
    created = CliRunner().invoke(cli, ["token", "create", "--name", "cli", "--role",
                                       "tenant", "--tenant", "corner-bakery", "--json",
                                       "-c", str(api.config_file)])
    assert created.exit_code == 0, created.output
    secrets.append(json.loads(created.stdout)["token"])
    db = Path(str(api.store.engine.url.database))
    dumped = dump_sqlite(db)
    raw = db.read_bytes() + (Path(f"{db}-wal").read_bytes() if Path(f"{db}-wal").exists()
                             else b"")
    listed = CliRunner().invoke(cli, ["token", "list", "--json", "-c", str(api.config_file)])
    for secret in secrets:
        assert secret not in dumped and secret.encode() not in raw
        assert secret not in caplog.text and secret not in listed.stdout
        assert secret[3:20] not in dumped  # not even a long piece of it
        assert hashlib.sha256(secret.encode()).hexdigest() in dumped
    prefixes = {row["prefix"] for row in json.loads(listed.stdout)}
    assert all(len(p) == 10 and p.startswith("pw_") for p in prefixes)


@pytest.mark.postgres
def test_postgresql_holds_only_hashes_too(tmp_path: Path) -> None:
    with fresh_pg_database() as url:
        store = open_store(url)
        try:
            new = auth.create_token(store, name="pg", role="operator-write", created_by="t",
                                    now=time.time())
            assert auth.verify_token(store, new.secret, now=time.time()) is not None
        finally:
            store.close()
        dumped = dump_sql(url)
        assert new.secret not in dumped
        assert hashlib.sha256(new.secret.encode()).hexdigest() in dumped


def test_revocation_applies_at_the_next_request(api: Api) -> None:
    assert api.get("/api/v1/tenants", token="tenant-a").status_code == 200
    ids = {t.name: t.id for t in api.store.tokens()}
    revoked = CliRunner().invoke(cli, ["token", "revoke", str(ids["tenant-a"]), "-c",
                                       str(api.config_file)])
    assert revoked.exit_code == 0, revoked.output
    refused = api.get("/api/v1/tenants", token="tenant-a")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert api.get("/api/v1/tenants", token="tenant-b").status_code == 200  # others unharmed
    again = CliRunner().invoke(cli, ["token", "revoke", str(ids["tenant-a"]), "-c",
                                     str(api.config_file)])
    assert again.exit_code == 2 and "no live token" in again.output
    audit = api.get("/api/v1/audit", params={"action": "token.revoke"}).json()
    assert [r["target"] for r in audit] == [f"token:{ids['tenant-a']}"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc",
                                    "Bearer pw_" + "A" * 43, "bearer  "])
def test_missing_or_unknown_tokens_are_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = api.get("/api/v1/tenants", token=None, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": {
        "message": "a valid API token is required (Authorization: Bearer ...)", "field": None}}


def test_last_use_is_recorded(api: Api) -> None:
    assert all(t.last_used_at is None for t in api.store.tokens())
    api.get("/api/v1/tenants", token="operator-read")
    used = {t.name: t.last_used_at for t in api.store.tokens()}
    assert used["operator-read"] == api.now and used["tenant-a"] is None
