"""Benchmark: a 10,000-record DMARC aggregate report parsed and stored, against parsedmarc.

Generates one report (10,000 records over 2,000 source IPs, half of them ours, the
usual mix of DKIM/SPF results and auth_results), then in the same run and on the same
bytes: poolwarden's ``DmarcIngest`` (defusedxml parse under the caps, join to tenants and
egress IPs, one SQLite transaction) and parsedmarc's ``parse_aggregate_report_xml``
(parse only, ``offline=True`` and local files only: no DNS, no downloads). Prints both
times, the ratio (target: at least 5x) and poolwarden's parse-only time. A socket guard
refuses any connection outside 127.0.0.0/8 for the whole run.
Usage: python bench/bench_dmarc.py [--records N] [--rounds N]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from poolwarden.adapters.sqlstore import open_store
from poolwarden.core.model import EgressIp, Inventory, Plan, Pool, PoolKind, Tenant, Tier
from poolwarden.core.providers import DEFAULT_PROVIDERS
from poolwarden.services.domains.dmarc_ingest import DmarcIngest
from poolwarden.wire.dmarc_xml import parse_report

_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and not ipaddress.ip_address(host).is_loopback:
        raise OSError(f"bench: refused a connection to {host} (loopback only)")
    return _connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


def inventory() -> Inventory:
    ips = [f"127.0.{i // 200}.{i % 200 + 1}" for i in range(1000)]
    tenants = tuple(Tenant(f"t{i}", Plan.SHARED, domains=(f"tenant{i}.example",))
                    for i in range(200))
    return Inventory(tenants, tuple(EgressIp(a, f"mta-{a}.example") for a in ips),
                     (Pool("shared", PoolKind.SHARED, frozenset({Tier.GOOD, Tier.NEW,
                                                                 Tier.RISKY}), tuple(ips)),),
                     DEFAULT_PROVIDERS)


def report(records: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    ours = [f"127.0.{i // 200}.{i % 200 + 1}" for i in range(1000)]
    theirs = [f"198.51.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n<version>1.0</version>\n'
             "<report_metadata><org_name>google.com</org_name>"
             "<email>noreply-dmarc-support@google.com</email>"
             "<extra_contact_info>https://support.google.com/a/answer/2466580"
             "</extra_contact_info><report_id>bench-1</report_id><date_range>"
             "<begin>1700006400</begin><end>1700092799</end></date_range>"
             "</report_metadata>\n<policy_published><domain>tenant1.example</domain>"
             "<adkim>r</adkim><aspf>r</aspf><p>reject</p><sp>reject</sp><pct>100</pct>"
             "</policy_published>\n"]
    for i in range(records):
        ip = rng.choice(ours if i % 2 else theirs)
        domain = f"tenant{rng.randrange(200)}.example"
        dkim = rng.choice(("pass", "pass", "pass", "fail"))
        spf = rng.choice(("pass", "pass", "fail"))
        parts.append(
            f"<record><row><source_ip>{ip}</source_ip><count>{rng.randrange(1, 500)}</count>"
            f"<policy_evaluated><disposition>{'none' if 'pass' in (dkim, spf) else 'reject'}"
            f"</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>"
            f"<identifiers><header_from>{domain}</header_from></identifiers><auth_results>"
            f"<dkim><domain>{domain}</domain><selector>s1</selector><result>{dkim}</result>"
            f"</dkim><spf><domain>bounce.{domain}</domain><scope>mfrom</scope>"
            f"<result>{spf}</result></spf></auth_results></record>\n")
    parts.append("</feedback>\n")
    return "".join(parts).encode()


def ours(xml: bytes, workdir: Path, round_: int) -> float:
    store = open_store(f"sqlite:///{workdir / f'bench-{round_}.db'}")
    try:
        ingest = DmarcIngest(store, inventory(), clock=lambda: 1_700_100_000.0)
        ingest.senders = lambda report: {}  # type: ignore[method-assign,assignment,return-value]
        started = time.perf_counter()
        (outcome,) = ingest.ingest(xml, source="bench.xml")
        elapsed = time.perf_counter() - started
        assert outcome.status == "stored", outcome
        assert len(store.dmarc_records()) == outcome.records
        return elapsed
    finally:
        store.close()


def theirs(xml: bytes) -> float:
    import parsedmarc

    started = time.perf_counter()
    parsed = parsedmarc.parse_aggregate_report_xml(xml, offline=True,
                                                   always_use_local_files=True)
    elapsed = time.perf_counter() - started
    assert len(parsed["records"]) > 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    xml = report(args.records)
    parsed = parse_report(xml)
    assert len(parsed.records) == args.records
    parse_times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        parse_report(xml)
        parse_times.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        ours_times = [ours(xml, Path(tmp), r) for r in range(args.rounds)]
    try:
        theirs_times = [theirs(xml) for _ in range(args.rounds)]
    except ImportError:
        print("parsedmarc is not installed (pip install parsedmarc==11.1.0); no ratio")
        theirs_times = []
    best_ours = min(ours_times)
    print(f"report: {len(xml):,} bytes, {args.records:,} records, {parsed.messages:,} messages")
    print(f"poolwarden parse only: {min(parse_times):.3f} s "
          f"({args.records / min(parse_times):,.0f} records/s)")
    print(f"poolwarden parse + join + store (SQLite): {best_ours:.3f} s "
          f"({args.records / best_ours:,.0f} records/s)")
    if theirs_times:
        best_theirs = min(theirs_times)
        print(f"parsedmarc parse_aggregate_report_xml (offline): {best_theirs:.3f} s "
              f"({args.records / best_theirs:,.0f} records/s)")
        ratio = best_theirs / best_ours
        print(f"ratio: {ratio:.1f}x parsedmarc (target >= 5x): "
              f"{'met' if ratio >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
