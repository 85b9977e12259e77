"""``ports.AccessStore`` on every backend (SQLite, PostgreSQL, memory): tokens by hash,
revocation, users, and the audit log appended and filtered the same way."""

from __future__ import annotations

import pytest

from poolwarden.core.errors import StoreError
from poolwarden.ports import AuditRow, TokenRow, UserRow
from tests.adapters.conftest import backend, db_url, make_store, store  # noqa: F401


def token(name: str, digest: str) -> TokenRow:
    return TokenRow(id=0, name=name, prefix="pw_abcdefg", token_hash=digest,
                    role="tenant", tenant="shop", created_at=1.0, created_by="t")


def test_tokens_by_hash_touch_and_revoke(store) -> None:  # noqa: F811 (the fixture)
    first = store.add_token(token("a", "1" * 64))
    second = store.add_token(token("b", "2" * 64))
    assert first != second
    with pytest.raises(StoreError):
        store.add_token(token("c", "1" * 64))  # one row per hash
    assert store.token_by_hash("1" * 64).name == "a"
    assert store.token_by_hash("3" * 64) is None
    store.touch_token(first, 5.0)
    assert store.token_by_hash("1" * 64).last_used_at == 5.0
    assert store.revoke_token(first, 6.0) is True
    assert store.revoke_token(first, 7.0) is False  # already revoked: unchanged
    assert store.revoke_token(999, 7.0) is False
    rows = store.tokens()
    assert [(t.name, t.revoked_at) for t in rows] == [("a", 6.0), ("b", None)]


def test_users_add_get_remove(store) -> None:  # noqa: F811 (the fixture)
    row = UserRow(name="ann", role="operator-read", tenant=None, salt="ab" * 16,
                  password_hash="cd" * 32, created_at=1.0)
    store.add_user(row)
    with pytest.raises(StoreError):
        store.add_user(row)
    assert store.user("ann") == row
    assert store.users() == [row]
    assert store.remove_user("ann") is True
    assert store.remove_user("ann") is False
    assert store.user("ann") is None


def test_audit_is_appended_cleaned_and_filtered(store) -> None:  # noqa: F811 (the fixture)
    ids = [store.add_audit(AuditRow(at=float(i), actor=f"u{i % 2}", source="api",
                                    action="override.set", target=f"tenant:t{i}",
                                    before={"tier": "new"}, after={"tier": "good", "n": i}))
           for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    store.add_audit(AuditRow(at=9.0, actor="x\x00y" + "z" * 400, source="cli",
                             action="user.add", target="user:\x00ann"))
    rows = store.audit()
    assert rows[0].actor == "xy" + "z" * 253 and rows[0].target == "user:ann"
    assert [r.id for r in rows[1:]] == ids[::-1]
    assert rows[1].after == {"tier": "good", "n": 4} and rows[1].before == {"tier": "new"}
    assert [r.target for r in store.audit(actor="u1")] == ["tenant:t3", "tenant:t1"]
    assert len(store.audit(since=3.0)) == 3
    assert [r.target for r in store.audit(target="tenant:t2")] == ["tenant:t2"]
    assert len(store.audit(action="override.set", limit=2)) == 2
    rows[1].after["n"] = 99  # callers get copies: the log cannot be changed through them
    assert store.audit(target="tenant:t4")[0].after["n"] == 4
