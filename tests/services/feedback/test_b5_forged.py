"""B5: forged feedback never moves a tenant; it is stored as untrusted, counted and alerted.

Runs on a real SQLite store. The same messages carrying genuine tokens do move the
tenant (the control), so "nothing changed" is not vacuous.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import Tier
from poolwarden.services.feedback.intake import FeedbackService
from poolwarden.wire import verp
from tests.services.feedback.support import (
    NOW,
    SECRET,
    VERP_DOMAIN,
    arf,
    dsn,
    load,
    return_path,
    service,
)

VICTIM = "northwind-news"  # tier good, shared pool
VICTIM_IP = "127.0.0.11"


@pytest.fixture
def sql(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    yield store
    store.close()


def seed(svc: FeedbackService) -> None:
    """1,000 clean deliveries today: the victim is a good sender."""
    svc.engine.add_events(Event(key=f"seed-{i}", time=NOW - 3600, kind=EventKind.DELIVERED,
                                tenant=VICTIM, provider="google", ip=VICTIM_IP,
                                recipient_domain="gmail.com") for i in range(1000))
    assert svc.engine.evaluate(NOW) == []  # a good sender stays good


def snapshot(svc: FeedbackService) -> tuple[object, ...]:
    counters = sorted((r.scope.value, r.scope_id, r.provider, r.day, r.counts.as_tuple())
                      for r in svc.engine.store.counters(since_day=0))
    return (svc.engine.store.event_count(), counters, svc.engine.standings()[VICTIM])


def tampered(address: str, pos: int = 10) -> str:
    swapped = "a" if address[pos] != "a" else "b"
    return address[:pos] + swapped + address[pos + 1:]


def forged_bounces(n: int) -> Iterator[bytes]:
    """Bounces aimed at the victim every way a forger can without our key."""
    genuine = verp.encode(SECRET, VICTIM, "REAL1", VICTIM_IP, VERP_DOMAIN)
    local, _, _ = genuine.partition("@")
    for i in range(n):
        shape = i % 4
        if shape == 0:  # a token signed with a guessed key
            rp = verp.encode(b"guessed-key-%06d-xxxxxxxx" % i, VICTIM, f"F{i}", VICTIM_IP,
                             VERP_DOMAIN)
        elif shape == 1:  # a genuine token with one character changed
            rp = tampered(genuine, 2 + i % (len(local) - 2))
        elif shape == 2:  # no token at all: only the victim's name and domain in the text
            rp = f"bounce-{VICTIM}@northwind.example"
        else:  # a token-shaped string that is not base32 of anything we made
            rp = f"b+{'q' * 40}{i:08d}@{VERP_DOMAIN}".replace("0", "a").replace("1", "b")
        raw = dsn(rp, f"victim-rcpt{i}@gmail.com")
        yield raw.replace(b"From: news@bigretail.example", b"From: news@northwind.example")


def test_ten_thousand_forged_bounces_change_nothing(sql: SqlStore, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    svc = service(load(tmp_path), sql)
    seed(svc)
    before = snapshot(svc)
    with caplog.at_level(logging.WARNING, logger="poolwarden.feedback"):
        batch = []
        for raw in forged_bounces(10_000):
            batch.append(svc.assess(raw, source="forger"))
            if len(batch) == 500:
                assert svc.store(batch).events_added == 0
                batch.clear()
    assert svc.engine.evaluate(NOW) == []
    assert snapshot(svc) == before  # no event, no counter, same tier
    assert svc.engine.standings()[VICTIM].tier is Tier.GOOD
    counts = sql.feedback_counts()
    assert counts == {"trusted": 0, "untrusted": 10_000, "rejected": 0}
    assert svc.counts["untrusted"] == 10_000
    assert all(r.tenant is None and not r.trusted for r in sql.feedback(limit=200))
    assert any("untrusted feedback" in r.getMessage() for r in caplog.records)


def test_control_the_same_bounces_with_genuine_tokens_do_move_the_tenant(
        tmp_path: Path) -> None:
    svc = service(load(tmp_path), MemoryStore())
    seed(svc)
    for i in range(200):  # 40 messages, 5 recipients each (max_events_per_message = 5)
        rp = verp.encode(SECRET, VICTIM, f"M{i // 5}", VICTIM_IP, VERP_DOMAIN)
        svc.process(dsn(rp, f"victim-rcpt{i}@gmail.com"), source="genuine")
    moves = svc.engine.evaluate(NOW)
    assert [(m.tenant, m.after) for m in moves] != []
    assert svc.engine.standings()[VICTIM].tier is not Tier.GOOD


@pytest.mark.parametrize("case", ["arf-not-allowlisted", "arf-cve-from", "arf-two-froms",
                                  "arf-envelope-not-allowlisted", "dsn-bad-hmac",
                                  "dsn-unknown-tenant", "dsn-never-sent"])
def test_each_forgery_is_stored_untrusted_and_moves_nothing(sql: SqlStore, tmp_path: Path,
                                                            case: str) -> None:
    svc = service(load(tmp_path), sql)
    seed(svc)
    before = snapshot(svc)
    genuine = return_path(VICTIM, "REAL2", VICTIM_IP)
    raw, sender = {
        # a genuine token (the forger received a real message) but not from an FBL
        "arf-not-allowlisted": (arf(genuine, sender="abuse@forger.example"), None),
        "arf-cve-from": (arf(genuine, sender='"staff@hotmail.com" <x@forger.example>'), None),
        "arf-two-froms": (arf(genuine).replace(b"From: feedback@fbl.example.org\r\n",
                                               b"From: feedback@fbl.example.org\r\n"
                                               b"From: x@forger.example\r\n"), None),
        "arf-envelope-not-allowlisted": (arf(genuine), "bounce@forger.example"),
        "dsn-bad-hmac": (dsn(tampered(genuine)), None),
        # signed with our key but for a tenant that is not configured (removed, or test data)
        "dsn-unknown-tenant": (dsn(return_path("no-such-tenant", "X1", None)), None),
        # a message we never sent: the forger cannot make its token
        "dsn-never-sent": (dsn(verp.encode(b"forger-key-0123456789abcdef", VICTIM, "NEVER",
                                           VICTIM_IP, VERP_DOMAIN)), None),
    }[case]
    assessment, stored = svc.process(raw, source="forger", envelope_sender=sender)
    assert assessment.status == "untrusted", assessment.reason
    assert stored.events_added == 0 and stored.rows_added >= 1
    assert svc.engine.evaluate(NOW) == []
    assert snapshot(svc) == before
    assert sql.feedback_counts()["untrusted"] >= 1
    assert all(not r.trusted for r in sql.feedback())
