"""DMARC records joined to tenants, egress IPs and routes, and what the join tells.

The store's delivery events say who sent from which IP on which day; a report's records
are then attributed: the From domain's owner, our IP or a foreign source, the route the
IP belongs to, and a note when the attribution is weaker. The summary gives the aligned
pass shares per route, the foreign sources, and alignment that breaks on one route only.
"""

from __future__ import annotations

import gzip

from poolwarden.adapters.memory import MemoryStore
from poolwarden.core.dmarc import summarize
from poolwarden.core.events import Event, EventKind
from poolwarden.services.domains.dmarc_ingest import DmarcIngest
from tests.services.domains.dmarc_samples import inventory, mail_with, report_xml

BEGIN = 1_700_006_400  # a UTC midnight
NOW = BEGIN + 3 * 86400


def delivered(tenant: str, ip: str, at: float, n: int) -> list[Event]:
    return [Event(f"{tenant}-{ip}-{at}-{i}", at, EventKind.DELIVERED, tenant, "google", ip,
                  f"{tenant}.example") for i in range(n)]


def store_with_sending() -> MemoryStore:
    store = MemoryStore()
    store.add_events([*delivered("shop", "127.0.0.13", BEGIN + 3600, 3),
                      *delivered("bank", "127.0.0.21", BEGIN + 7200, 2)])
    return store


def test_records_are_joined_to_tenant_ip_and_route() -> None:
    store = store_with_sending()
    xml = report_xml(begin=BEGIN, records=[
        ("127.0.0.13", 40, "pass", "pass"),  # shop on its shared pool
        ("198.51.100.7", 5, "fail", "fail"),  # someone else sending as shop.example
        ("127.0.0.11", 2, "pass", "pass"),  # our IP, but shop sent nothing from it
    ]) .replace(b"</feedback>", report_xml(begin=BEGIN, domain="unowned.example", records=[
        ("127.0.0.21", 7, "fail", "pass")]).split(b"</policy_published>")[1])
    ingest = DmarcIngest(store, inventory(), clock=lambda: NOW)
    (outcome,) = ingest.ingest(mail_with([("r.xml.gz", "application/gzip",
                                           gzip.compress(xml))]), source="lmtp")
    assert outcome.status == "stored", outcome
    got = {(j.record.source_ip, j.record.header_from): j for j in store.dmarc_records()}
    shop = got[("127.0.0.13", "shop.example")]
    assert (shop.ours, shop.tenant, shop.route, shop.note) == (True, "shop", "shared-new", "")
    foreign = got[("198.51.100.7", "shop.example")]
    assert (foreign.ours, foreign.tenant, foreign.route) == (False, "shop", None)
    idle = got[("127.0.0.11", "shop.example")]
    assert idle.ours and idle.route == "shared-good"
    assert "no sending by shop from 127.0.0.11" in idle.note
    bank = got[("127.0.0.21", "unowned.example")]
    assert (bank.tenant, bank.route) == ("bank", "dedicated:bank")
    assert "bank alone sent from 127.0.0.21" in bank.note


def test_summary_shares_foreign_sources_and_route_only_breaks() -> None:
    store = store_with_sending()
    xml = report_xml(begin=BEGIN, records=[
        ("127.0.0.13", 90, "pass", "pass"),
        ("127.0.0.11", 30, "pass", "fail"),  # SPF does not cover the good pool
        ("198.51.100.7", 5, "fail", "fail"),
        ("198.51.100.8", 1, "fail", "pass")])
    DmarcIngest(store, inventory(), clock=lambda: NOW).ingest(xml, source="r.xml")
    (summary,) = summarize(store.dmarc_records(tenant="shop"))
    assert summary.tenant == "shop" and summary.domain == "shop.example"
    assert summary.ours.messages == 120 and summary.ours.spf_aligned == 90
    assert summary.by_route["shared-good"].spf_aligned == 0
    assert summary.by_route["shared-new"].as_dict()["spf_aligned_share"] == 1.0
    assert summary.foreign.messages == 6 and summary.foreign.dmarc_pass == 1
    assert set(summary.foreign_sources) == {"198.51.100.7", "198.51.100.8"}
    assert any("6 messages claiming shop.example came from 2 source(s)" in f
               for f in summary.findings)
    assert any("spf aligned pass breaks only on route shared-good: 0%" in f
               for f in summary.findings), summary.findings
    assert not any("dkim" in f for f in summary.findings)


def test_old_reports_are_joined_without_the_sender_check() -> None:
    store = store_with_sending()
    xml = report_xml(begin=BEGIN - 400 * 86400, records=[("127.0.0.11", 1, "pass", "pass")])
    DmarcIngest(store, inventory(), clock=lambda: NOW).ingest(xml, source="old.xml")
    (joined,) = store.dmarc_records()
    assert joined.tenant == "shop" and joined.note == ""
