"""DMARC reports in the store: SQLite, PostgreSQL and memory behave alike.

A report and its joined records round-trip whole; a second report with the same key
writes nothing (not even its records); reads filter by tenant, From domain and time.
"""

from __future__ import annotations

from poolwarden.core.dmarc import DkimAuth, DmarcRecord, JoinedRecord, Reason, SpfAuth
from poolwarden.ports import DmarcReportRow, Store


def row(key: str = "google.com|r-1", **kw: object) -> DmarcReportRow:
    base: dict[str, object] = dict(key=key, status="stored", received_at=1.7e9,
                                   source="r.xml", org_name="google.com", report_id="r-1",
                                   policy_domain="shop.example", policy_p="reject",
                                   begin=1_700_000_000, end=1_700_086_399, records=2,
                                   messages=12, warnings=("upper-case values were read",))
    base.update(kw)
    return DmarcReportRow(**base)  # type: ignore[arg-type]


def joined(key: str, ip: str, tenant: str | None, *, ours: bool = True, count: int = 10,
           domain: str = "shop.example", begin: int = 1_700_000_000) -> JoinedRecord:
    record = DmarcRecord(ip, count, "none", "pass", "fail", domain, "bounce.shop.example",
                         None, (Reason("forwarded", "list"),),
                         (DkimAuth(domain, "s1", "pass", None),),
                         (SpfAuth("bounce.shop.example", "mfrom", "fail", None),))
    return JoinedRecord(key, begin, begin + 86399, record, ours, tenant,
                        "shared-new" if ours else None, "" if ours else "not ours")


def test_report_and_records_round_trip(store: Store) -> None:
    records = [joined("google.com|r-1", "127.0.0.13", "shop"),
               joined("google.com|r-1", "198.51.100.7", "shop", ours=False, count=2)]
    assert store.add_dmarc_report(row(), records) is True
    (got,) = store.dmarc_reports()
    assert got.key == "google.com|r-1" and got.messages == 12 and got.id is not None
    assert got.warnings == ("upper-case values were read",)
    assert store.dmarc_records() == records


def test_the_same_report_is_stored_once(store: Store) -> None:
    assert store.add_dmarc_report(row(), [joined("google.com|r-1", "127.0.0.13", "shop")])
    again = [joined("google.com|r-1", "127.0.0.14", "shop")]
    assert store.add_dmarc_report(row(source="again.eml"), again) is False
    assert len(store.dmarc_reports()) == 1
    assert [j.record.source_ip for j in store.dmarc_records()] == ["127.0.0.13"]


def test_reads_filter_and_order(store: Store) -> None:
    store.add_dmarc_report(row(), [joined("google.com|r-1", "127.0.0.13", "shop")])
    store.add_dmarc_report(row("yahoo|9", status="rejected", reason="empty report"), [])
    store.add_dmarc_report(row("yahoo|10", begin=1_600_000_000, end=1_600_086_399),
                           [joined("yahoo|10", "127.0.0.21", "bank", domain="bank.example",
                                   begin=1_600_000_000)])
    assert [r.key for r in store.dmarc_reports()] == ["yahoo|10", "yahoo|9",
                                                     "google.com|r-1"]
    assert [r.reason for r in store.dmarc_reports(status="rejected")] == ["empty report"]
    assert [j.tenant for j in store.dmarc_records(tenant="bank")] == ["bank"]
    assert [j.tenant for j in store.dmarc_records(domain="shop.example")] == ["shop"]
    assert [j.tenant for j in store.dmarc_records(since=1_650_000_000)] == ["shop"]
