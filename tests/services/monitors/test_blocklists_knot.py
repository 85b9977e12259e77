"""Blocklist checks against a real Knot DNS on loopback: listed, clear, error-coded and
unanswered targets for every built-in list (with its own answer codes), the query budget,
the concurrency bound and the hard timeout (B-tests: error codes and timeouts are never
"listed")."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from poolwarden.adapters.resolver import DnsResolver
from poolwarden.core.blocklists import Blocklist, ListKind, Meaning, Outcome, Status
from poolwarden.ports import Lookup
from poolwarden.services.monitors.checks import Target, blocklist_round
from tests.services.monitors.zones import (
    CLEAR_DOMAIN,
    CLEAR_IP,
    ERROR_DOMAIN,
    ERROR_IP,
    LISTED_DOMAIN,
    LISTED_IP,
    OWN_ERROR_DOMAIN,
    TIMEOUT_ZONE,
    first_code,
    lab_lists,
)

IP_TARGETS = [Target(a, ListKind.IP) for a in (LISTED_IP, CLEAR_IP, ERROR_IP)]
DOMAIN_TARGETS = [Target(d, ListKind.DOMAIN)
                  for d in (LISTED_DOMAIN, CLEAR_DOMAIN, ERROR_DOMAIN, OWN_ERROR_DOMAIN)]


def resolver(port: int, **kw: float) -> DnsResolver:
    return DnsResolver([("127.0.0.1", port)], timeout=kw.get("timeout", 0.5),
                       lifetime=kw.get("lifetime", 1.0), concurrency=int(kw.get("conc", 20)))


def run_round(port: int, targets, lists, budget=10_000, **kw):
    return asyncio.run(blocklist_round(resolver(port, **kw), targets, lists, budget=budget))


def by_pair(result):
    return {(f.target, f.list): f for f in result.findings}


def test_every_list_listed_clear_and_error(knot):
    lists = lab_lists()
    result = run_round(knot.port, IP_TARGETS + DOMAIN_TARGETS, lists)
    found = by_pair(result)
    ip_lists = [b for b in lists if b.kind is ListKind.IP]
    domain_lists = [b for b in lists if b.kind is ListKind.DOMAIN]
    assert len(ip_lists) == 6 and len(domain_lists) == 3
    assert result.checked == 3 * 6 + 4 * 3  # IPs only on IP lists, domains on domain lists
    for b in ip_lists:
        listed = found[(LISTED_IP, b.name)]
        code = first_code(b, Meaning.LISTED)
        assert listed.status is Status.LISTED, listed
        assert listed.codes == (code,)
        assert b.answers[code].label in listed.meaning  # the list's own meaning of the code
        assert listed.reason == f"Listed by {b.name}, see https://{b.name}.test/"
        assert found[(CLEAR_IP, b.name)].status is Status.CLEAR
        error = found[(ERROR_IP, b.name)]
        assert error.status is Status.UNKNOWN and "not listed" in error.meaning
    for b in domain_lists:
        assert found[(LISTED_DOMAIN, b.name)].status is Status.LISTED
        assert found[(CLEAR_DOMAIN, b.name)].status is Status.CLEAR
        assert found[(ERROR_DOMAIN, b.name)].status is Status.UNKNOWN
        # each domain list's own refusal code (DBL 127.0.1.255, SURBL/URIBL 127.0.0.1)
        own = found[(OWN_ERROR_DOMAIN, b.name)]
        assert own.status is Status.UNKNOWN, own
        assert own.codes == (first_code(b, Meaning.ERROR),)


def test_undocumented_code_and_foreign_answer_are_unknown():
    blocklist = Blocklist("x", "x.dnsbl.test", ListKind.IP, {})
    from poolwarden.core.blocklists import interpret

    assert interpret(blocklist, "1.2.3.4", Outcome.ANSWER, ["127.0.0.99"]).status \
        is Status.UNKNOWN
    assert interpret(blocklist, "1.2.3.4", Outcome.ANSWER, ["198.51.100.7"]).status \
        is Status.UNKNOWN


def test_zone_the_server_does_not_serve_is_unknown(knot):
    lists = [Blocklist("elsewhere", "zen.spamhaus.example", ListKind.IP, lab_lists()[0].answers)]
    result = run_round(knot.port, IP_TARGETS, lists)
    assert {f.status for f in result.findings} == {Status.UNKNOWN}  # REFUSED, not NXDOMAIN


@pytest.fixture
def silent_port():
    """A UDP port on loopback that reads queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_timeout_is_unknown_within_the_hard_deadline(silent_port):
    lists = [Blocklist("slow", TIMEOUT_ZONE, ListKind.IP, lab_lists()[0].answers)]
    started = time.monotonic()
    result = run_round(silent_port, IP_TARGETS, lists, timeout=0.2, lifetime=0.4, conc=10)
    elapsed = time.monotonic() - started
    assert [f.status for f in result.findings] == [Status.UNKNOWN] * 3
    assert all("timeout" in f.meaning for f in result.findings)
    assert elapsed < 0.4 + 0.5 + 0.5  # all three at once, each cut at its lifetime


def test_budget_limits_lookups_and_the_next_round_continues(knot):
    lists = [b for b in lab_lists() if b.kind is ListKind.IP]  # 6 lists x 3 IPs = 18 pairs
    res = resolver(knot.port)

    async def two_rounds():
        first = await blocklist_round(res, IP_TARGETS, lists, budget=7)
        second = await blocklist_round(res, IP_TARGETS, lists, budget=7,
                                       offset=first.next_offset)
        return first, second

    first, second = asyncio.run(two_rounds())
    assert (first.checked, first.skipped, first.next_offset) == (7, 11, 7)
    seen_first = {(f.target, f.list) for f in first.findings}
    seen_second = {(f.target, f.list) for f in second.findings}
    assert not seen_first & seen_second  # the second round starts where the first stopped
    zero = asyncio.run(blocklist_round(res, IP_TARGETS, lists, budget=0))
    assert zero.lookups == 0 and zero.skipped == 18


class CountingResolver(DnsResolver):
    """Counts lookups in flight around the real one."""

    def __init__(self, port: int, concurrency: int) -> None:
        super().__init__([("127.0.0.1", port)], timeout=0.5, lifetime=1.0,
                         concurrency=concurrency)
        self.now = 0
        self.peak = 0

    async def _ask(self, name, rdtype):
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.005)
            return await super()._ask(name, rdtype)
        finally:
            self.now -= 1


def test_concurrency_is_bounded(knot):
    counting = CountingResolver(knot.port, concurrency=4)
    targets = [Target(f"10.0.{i // 250}.{i % 250}", ListKind.IP) for i in range(60)]
    asyncio.run(blocklist_round(counting, targets, lab_lists()[:2], budget=10_000))
    assert counting.peak == 4


def test_resolver_never_built_without_nameservers():
    from poolwarden.core.errors import ConfigError

    with pytest.raises(ConfigError, match="monitors.nameservers"):
        DnsResolver([])


def test_lookup_reports_its_outcome_not_an_exception(knot):
    res = resolver(knot.port)
    answer: Lookup = asyncio.run(res.lookup("nothing-here.test", "A"))
    assert answer.outcome is Outcome.NXDOMAIN
    answer = asyncio.run(res.lookup("gmail.test", "MX"))
    assert answer.outcome is Outcome.ANSWER and answer.values == ("5 gmail-smtp-in.l.google.test",)
    assert answer.ttl == 5
