"""From Postfix lines to attributed events: tenant, egress IP, provider, kind and reason.

A generated log (SASL users, sender domains, client addresses, the decision log, pw-
transports and the plain smtp transport, deferrals that expire, hard and soft bounces,
Postfix's own notifications, a tenant nobody knows) is ingested; the stored events
equal the generator's ground truth, and the day counters the reputation engine reads
say the same per tenant and per IP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config_text
from poolwarden.core.events import Event
from poolwarden.core.reputation import ALL_PROVIDERS, Scope
from poolwarden.ports import DecisionRow
from poolwarden.services.ingest.ingestd import Ingestd
from poolwarden.services.ingest.log_import import import_logs
from poolwarden.services.ingest.pipeline import pick_decision
from poolwarden.services.reputation.engine import Engine
from poolwarden.wire.postfix_correlate import Delivery, MessageInfo
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, generate, observed

FIELD = {"delivered": 0, "deferred": 1, "hard_bounce": 2, "soft_bounce": 3}


@pytest.mark.parametrize("fmt", ["syslog", "iso"])
def test_events_match_the_ground_truth(tmp_path: Path, fmt: str) -> None:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = load_config_text(config_toml(url), file=str(tmp_path / "pw.toml"))
    store = open_store(url)
    try:
        log = generate(7, 600, fmt=fmt)
        store.add_decisions(log.decisions)
        path = tmp_path / "mail.log"
        path.write_text("".join(log.lines))
        ingestd = Ingestd(config, store, [path], batch_lines=1000)
        metrics = ingestd.run_once()
        events = read_events(store)
        assert observed(events) == log.truth()
        assert metrics.unknown_tenants == log.unknown > 0
        assert metrics.skipped > 0  # Postfix's own non-delivery notifications
        assert {e.tenant for e in events} == {"acme", "globex", "initech", "hooli", "umbrella"}
        assert {e.provider for e in events} == {"google", "microsoft", "yahoo", "other"}
        reasons = {(e.kind.value, e.reason) for e in events}
        assert reasons == {("delivered", "delivered"), ("deferred", "blocked"),  # 4.7.1
                           ("hard_bounce", "userunknown"), ("soft_bounce", "mailboxfull"),
                           ("soft_bounce", "expired")}
        # the reputation engine's counters in the store say the same
        truth: dict[tuple[str, str], list[int]] = {}
        for item, n in log.truth().items():
            for scope, scope_id in (("tenant", item.tenant), ("ip", item.ip)):
                if scope_id is None:
                    continue
                row = truth.setdefault((scope, scope_id), [0, 0, 0, 0])
                row[FIELD[item.kind]] += n
        stored: dict[tuple[str, str], list[int]] = {}
        for c in store.counters(since_day=0):
            if c.provider == ALL_PROVIDERS and c.scope in (Scope.TENANT, Scope.IP):
                row = stored.setdefault((c.scope.value, c.scope_id), [0, 0, 0, 0])
                for i, value in enumerate(c.counts.as_tuple()[:4]):
                    row[i] += value
        assert stored == truth
        assert ("ip", "127.0.0.22") in stored  # umbrella's IP, known from the decision log
    finally:
        store.close()


def delivery(*, host: str | None = "mx1", recipient: str = "bob@example.net",
             time: float = 10_000.0, first_seen: float | None = 9_990.0) -> Delivery:
    info = MessageInfo(host, "4ABC12", first_seen)
    return Delivery(time, host, "4ABC12", recipient, "sent", "sent", "2.0.0", "250 ok",
                    "mx.example.net[192.0.2.1]:25", None, None, "smtp", info)


def row(at: float, *, node: str = "mx1", tenant: str = "acme",
        recipient: str = "bob@example.net") -> DecisionRow:
    return DecisionRow(at=at, node=node, instance=f"i{at}", tenant=tenant, recipient=recipient,
                       action="FILTER pw-192-0-2-1:", ip="192.0.2.1", pool="p", rule="r",
                       snapshot_version=1, queue_id="4ABC12")


def test_the_decision_is_the_newest_of_this_node_within_the_queue_lifetime() -> None:
    d = delivery()
    older = row(9_000.0, tenant="old")
    newer = row(9_980.0, tenant="new")
    assert pick_decision([older, newer], d) == newer
    # made after the delivery (beyond the clock-skew allowance): another message
    assert pick_decision([row(20_000.0)], d) is None
    # a reused short queue id from last week: not this message
    assert pick_decision([row(9_990.0 - 7 * 86400)], d) is None
    # another node's decision for the same short id is ignored when ours is there
    assert pick_decision([row(9_985.0, node="mx2", tenant="x"), newer], d) == newer
    # several other nodes only: ambiguous
    assert pick_decision([row(9_985.0, node="mx2"), row(9_986.0, node="mx3")], d) is None
    # one other node only (a node name that is not the syslog host name): used
    assert pick_decision([row(9_985.0, node="mx1.example.net", tenant="fq")], d) is not None
    # the recipient's own row wins over a newer row for another recipient
    mine = row(9_970.0, tenant="mine")
    other = row(9_985.0, tenant="other", recipient="carol@example.net")
    assert pick_decision([mine, other], d) == mine


def test_on_batch_pairs_each_new_event_with_its_delivery(tmp_path: Path) -> None:
    """The per-batch callback gets every newly stored event once, next to the delivery it
    came from (reply text, DSN, egress IP); a failing callback is counted, and ingestion
    and the stored position go on."""
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = load_config_text(config_toml(url), file=str(tmp_path / "pw.toml"))
    store = open_store(url)
    try:
        log = generate(11, 300, fmt="iso")
        store.add_decisions(log.decisions)
        path = tmp_path / "mail.log"
        path.write_text("".join(log.lines))
        seen: list[tuple[Delivery, Event]] = []
        calls = 0

        def on_batch(deliveries: Sequence[Delivery], events: Sequence[Event]) -> None:
            nonlocal calls
            calls += 1
            assert len(deliveries) == len(events)
            seen.extend(zip(deliveries, events, strict=True))
            if calls == 2:
                raise RuntimeError("a bug in the callback")

        ingestd = Ingestd(config, store, [path], batch_lines=200, chunk_bytes=4096,
                          on_batch=on_batch)
        metrics = ingestd.run_once()
        assert calls >= 3 and metrics.callback_errors == 1
        stored = read_events(store)
        assert sorted(e.key for _, e in seen) == sorted(e.key for e in stored)
        assert observed([e for _, e in seen]) == log.truth()
        for d, e in seen:
            assert d.key == e.key and d.time == e.time
            if e.kind.value == "deferred":
                assert d.status == "deferred" and d.reply and d.dsn and d.dsn.startswith("4")
            if d.egress_ip is not None:
                assert e.ip == d.egress_ip
        # the position moved past every batch, the failing one included: nothing again
        seen.clear()
        again = Ingestd(config, store, [path], batch_lines=400, on_batch=on_batch)
        assert again.run_once().events_stored == 0 and seen == []
        # an import of the same log: every event a duplicate, so no callback
        assert import_logs(config, store, [path], on_batch=on_batch).metrics.duplicates > 0
        assert seen == []
    finally:
        store.close()


def test_a_follower_maps_with_the_current_snapshot(tmp_path: Path) -> None:
    """serve's follower reads the routing snapshot at each batch: a tenant the running
    snapshot does not know is not stored, and once a reload adds it, its later
    deliveries are (the earlier ones stay unattributed: nothing is guessed)."""
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = load_config_text(config_toml(url), file=str(tmp_path / "pw.toml"))
    store = open_store(url)
    try:
        log = generate(13, 400, fmt="iso")
        store.add_decisions(log.decisions)
        full = Engine(config, store, now=0.0).snapshot(0.0)
        tenants = sorted({e.tenant for e in log.expected})
        missing = tenants[0]
        without = replace(
            full, tenants={k: v for k, v in full.tenants.items() if k != missing},
            by_sasl={k: v for k, v in full.by_sasl.items() if v != missing},
            by_domain={k: v for k, v in full.by_domain.items() if v != missing},
            by_client={k: v for k, v in full.by_client.items() if v != missing})
        current = [without]
        path = tmp_path / "mail.log"
        half = len(log.lines) // 2
        path.write_text("".join(log.lines[:half]))
        ingestd = Ingestd(config, store, [path], batch_lines=100,
                          current_snapshot=lambda: current[0])
        first = ingestd.run_once()
        assert first.unknown_tenants > 0
        assert not [e for e in read_events(store) if e.tenant == missing]
        current[0] = full  # a reload added the tenant
        with path.open("a") as f:
            f.write("".join(log.lines[half:]))
        ingestd.run_once()
        stored = read_events(store)
        late = [e for e in stored if e.tenant == missing]
        assert late and all(e.time >= min(x.time for x in late) for e in late)
        expected_late = [x for x in log.expected if x.tenant == missing]
        assert 0 < len(late) < len(expected_late)
    finally:
        store.close()
