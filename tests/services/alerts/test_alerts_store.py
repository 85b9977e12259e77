"""Recorded alerts on every backend (SQLite, a throw-away PostgreSQL, memory): round trip,
newest first, filters, text cleaned instead of refused, JSON handed back as copies."""

from __future__ import annotations

from typing import Any

from poolwarden.ports import AlertRow
from tests.adapters.conftest import backend, db_url, make_store, store

FIXTURES = (backend, db_url, make_store, store)  # the store on each backend, as in tests/adapters


def row(i: int, **kw: Any) -> AlertRow:
    base: dict[str, Any] = {
        "at": 1000.0 + i, "key": f"suspension:t{i}:1000", "kind": "suspension",
        "subject": f"t{i}: risky -> suspended", "text": "hard-bounce rate 12% >= 10%",
        "link": f"http://dash.example/tenants/t{i}",
        "numbers": {"metrics": {"hard_bounce_rate": 0.12}, "volume": 500},
        "tenant": f"t{i}", "ip": None, "outcome": {"webhook": "sent", "email": "failed"}}
    base.update(kw)
    return AlertRow(**base)


def test_alerts_round_trip_newest_first_with_filters(store: Any) -> None:
    ids = [store.add_alert(row(i)) for i in range(3)]
    ids.append(store.add_alert(row(3, kind="ingest_lag", tenant=None, key="ingest_lag")))
    assert ids == sorted(ids) and len(set(ids)) == 4
    got = store.alerts()
    assert [r.id for r in got] == ids[::-1]
    first = got[-1]
    assert first == row(0, id=ids[0])
    assert [r.tenant for r in store.alerts(kind="suspension")] == ["t2", "t1", "t0"]
    assert [r.key for r in store.alerts(tenant="t1")] == ["suspension:t1:1000"]
    assert [r.tenant for r in store.alerts(since=1001.5)] == [None, "t2"]
    assert len(store.alerts(limit=2)) == 2
    got[0].numbers["volume"] = -1  # a copy: the store keeps what was recorded
    assert store.alerts()[0].numbers == {"metrics": {"hard_bounce_rate": 0.12}, "volume": 500}


def test_alert_text_is_cleaned_not_refused(store: Any) -> None:
    store.add_alert(row(0, subject="bad\x00name" + "x" * 2000, tenant="t\x00" + "y" * 400))
    [got] = store.alerts()
    assert got.subject.startswith("badname") and len(got.subject) == 1024
    assert got.tenant is not None and "\x00" not in got.tenant and len(got.tenant) == 255
