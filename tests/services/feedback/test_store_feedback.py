"""Store: feedback rows on every backend (idempotent by key, filters, counts, cleaning)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import open_store
from poolwarden.adapters.storable import MAX_FEEDBACK_TEXT_LENGTH
from poolwarden.ports import FeedbackRow, Store
from tests.adapters.conftest import fresh_pg_database


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("memory", id="memory"),
])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
        yield opened
        opened.close()
        return
    with fresh_pg_database() as url:
        opened = open_store(url)
        yield opened
        opened.close()


def row(key: str, *, trusted: bool = True, reason: str = "", ref: str | None = "R1",
        recipient: str | None = "a@gmail.com", at: float = 1000.0) -> FeedbackRow:
    return FeedbackRow(key=key, received_at=at, kind="bounce", trusted=trusted, reason=reason,
                       tenant="bigretail" if trusted else None, ip="127.0.0.21",
                       recipient=recipient, message_ref=ref, message_id="<m@x>",
                       bounce_reason="userunknown", bounce_class="hard", dsn_status="5.1.1",
                       source="lmtp", raw_size=1234)


def test_rows_are_stored_once_by_key(store: Store) -> None:
    rows = [row("k1"), row("k2", trusted=False, reason="no valid VERP token"),
            row("k3", trusted=False, reason="rejected: too large"), row("k1")]
    assert store.add_feedback(rows) == 3
    assert store.add_feedback(rows) == 0
    assert store.add_feedback([]) == 0
    assert store.feedback_counts() == {"trusted": 1, "untrusted": 1, "rejected": 1}
    newest_first = store.feedback()
    assert [r.key for r in newest_first] == ["k3", "k2", "k1"]
    assert all(r.id is not None for r in newest_first)
    assert replace(newest_first[-1], id=None) == row("k1")  # every field round-trips
    assert newest_first[0].rejected and not newest_first[1].rejected


def test_filters_by_trust_and_reference(store: Store) -> None:
    store.add_feedback([row("a", ref="R1"), row("b", ref="R2"),
                        row("c", ref="R1", trusted=False, reason="x"), row("d", ref="R1")])
    assert [r.key for r in store.feedback(trusted=True, message_ref="R1")] == ["d", "a"]
    assert [r.key for r in store.feedback(trusted=False)] == ["c"]
    assert [r.key for r in store.feedback(limit=2)] == ["d", "c"]
    assert store.feedback(limit=0) == []


def test_text_from_mail_is_cleaned_and_cut_not_refused(store: Store) -> None:
    hostile = FeedbackRow(key="h", received_at=1.0, kind="bounce", trusted=False,
                          reason="bad\x00reason" + "r" * 5000, recipient="x\x00@y" + "z" * 5000,
                          message_id="\ud800<m@x>", source="s", raw_size=1)
    assert store.add_feedback([hostile]) == 1
    [stored] = store.feedback()
    assert "\x00" not in stored.reason and len(stored.reason) == MAX_FEEDBACK_TEXT_LENGTH
    assert stored.recipient is not None and len(stored.recipient) == MAX_FEEDBACK_TEXT_LENGTH
    assert stored.message_id == "?<m@x>"
