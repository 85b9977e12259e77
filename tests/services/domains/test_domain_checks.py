"""SPF, DKIM, DMARC, alignment and tracking checks against a real Knot DNS on loopback.

The zone serves good and broken records: SPF that is fine, that misses the shared pool,
that needs more than ten lookups, that has a syntax error, that redirects in a loop, an
include chain and a macro; DKIM keys of 2048, 1024 and 512 bits, a revoked key and a
CNAME-delegated selector; DMARC records. Every finding is compared with what the zone
makes true, with its record text and reason; the checker only ever asks that server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from poolwarden.adapters.dns_lookup import DnsLookup, PyspfEvaluator
from poolwarden.config.domain_settings import DomainCheckSettings
from poolwarden.core.auth import ERROR, OK, WARNING, Finding, spf_denied
from poolwarden.core.model import DomainRole, Plan, SendingDomain, Tenant
from poolwarden.services.domains.checks import DomainChecker
from poolwarden.testing.builders import GOOD_POOL_IPS, NEW_POOL_IPS, small_esp
from tests.services.feedback import knot as knot_mod
from tests.services.feedback.knot import DkimKey, KnotServer, make_key
from tests.support.real_parts import missing

SHARED = ", ".join(f"ip4:{ip}" for ip in (*GOOD_POOL_IPS, *NEW_POOL_IPS))


def _includes(n: int) -> list[str]:
    chain = [f'many TXT "v=spf1 {" ".join(f"include:i{i}.many.test" for i in range(n))} -all"']
    chain += [f'i{i}.many TXT "v=spf1 a:h{i}.many.test -all"' for i in range(n)]
    chain += [f"h{i}.many A 127.0.0.9" for i in range(n)]
    return chain


def zone(keys: dict[str, DkimKey]) -> list[str]:
    return [
        # good: the shared pools through an include, the dedicated IP directly
        'good TXT "v=spf1 include:_spf.esp.test ip4:127.0.0.21 -all"',
        f'_spf.esp TXT "v=spf1 {SHARED.replace(", ", " ")} ~all"',
        # the tenant's own SPF lists only its dedicated IP: every shared pool fails
        'narrow TXT "v=spf1 ip4:127.0.0.21 -all"',
        # macros: exists:%{i}._ip.esp.test authorizes the listed IPs only
        'macro TXT "v=spf1 exists:%{i}._ip.esp.test -all"',
        *(f"{ip}._ip.esp A 127.0.0.2" for ip in (*GOOD_POOL_IPS, *NEW_POOL_IPS)),
        *_includes(11),
        'broken TXT "v=spf1 ip4:127.0.0.11 incude:_spf.esp.test -all"',
        'loop TXT "v=spf1 redirect=loop2.test"',
        'loop2 TXT "v=spf1 redirect=loop.test"',
        'twice TXT "v=spf1 -all"',
        'twice TXT "v=spf1 +all"',
        'nospf TXT "hello"',
        f"s2048._domainkey.good TXT {keys['2048'].txt()}",
        f"s1024._domainkey.good TXT {keys['1024'].txt()}",
        f"s512._domainkey.good TXT {keys['512'].txt()}",
        'gone._domainkey.good TXT "v=DKIM1; k=rsa; p="',
        "esp._domainkey.good CNAME esp.dkim.esp",
        f"esp.dkim.esp TXT {keys['2048'].txt()}",
        '_dmarc.good TXT "v=DMARC1; p=reject; adkim=s; aspf=r; rua=mailto:d@esp.test"',
        '_dmarc.narrow TXT "v=DMARC1; p=none"',
        "click.good CNAME track.esp",
        "track.esp A 127.0.0.80",
        "click.narrow CNAME elsewhere.esp",
        "elsewhere.esp A 127.0.0.81",
    ]


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    if knot_mod.KNOTD is None or knot_mod.OPENSSL is None:
        missing("knotd and openssl are needed (scripts/setup.sh installs knot)")
    work = tmp_path_factory.mktemp("auth-dns")
    keys = {bits: make_key(f"s{bits}", "good.test", work, bits=int(bits))
            for bits in ("2048", "1024", "512")}
    server = KnotServer(work)
    server.start(zone(keys))
    try:
        yield server
    finally:
        server.stop()


def checker(dns: KnotServer, **settings: object) -> DomainChecker:
    lookup = DnsLookup([("127.0.0.1", dns.port)], timeout=2.0)
    return DomainChecker(lookup, PyspfEvaluator(lookup),
                         DomainCheckSettings(tracking_target="track.esp.test", **settings))


def tenant(name: str, *domains: SendingDomain, dedicated: bool = True) -> Tenant:
    return Tenant(name, Plan.MAJOR_VIA_SHARED if dedicated else Plan.SHARED,
                  domains=tuple(dict.fromkeys(d.domain for d in domains
                                              if DomainRole.FROM in d.roles
                                              or DomainRole.MAILFROM in d.roles)),
                  dedicated_ips=("127.0.0.21",) if dedicated else (), sending_domains=domains)


def mf(domain: str) -> SendingDomain:
    return SendingDomain(domain, frozenset({DomainRole.MAILFROM}))


def run(dns: KnotServer, t: Tenant) -> list[Finding]:
    return checker(dns).check_tenant(t, small_esp())


def only(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def test_good_spf_authorizes_every_route(dns: KnotServer) -> None:
    found = run(dns, tenant("t", mf("good.test")))
    (spf,) = only(found, "spf")
    assert spf.status == OK and spf.record == \
        "v=spf1 include:_spf.esp.test ip4:127.0.0.21 -all"
    assert "1 of 10 DNS lookups" in spf.reason  # the include; ip4 costs none
    routes = only(found, "spf-route")
    assert {(f.route, f.ip) for f in routes} == {
        ("dedicated:t", "127.0.0.21"), *(("shared-good", ip) for ip in GOOD_POOL_IPS),
        *(("shared-new", ip) for ip in NEW_POOL_IPS)}
    assert {f.status for f in routes} == {OK}
    assert spf_denied(found) == {}


def test_spf_that_misses_the_shared_pools_names_each_ip(dns: KnotServer) -> None:
    found = run(dns, tenant("t", mf("narrow.test")))
    bad = [f for f in only(found, "spf-route") if f.status == ERROR]
    assert {f.ip for f in bad} == {*GOOD_POOL_IPS, *NEW_POOL_IPS}
    assert all("not authorized: SPF fail" in f.reason for f in bad)
    assert all(f.record == "v=spf1 ip4:127.0.0.21 -all" for f in bad)
    assert spf_denied(found) == {"narrow.test": frozenset({*GOOD_POOL_IPS, *NEW_POOL_IPS})}


def test_spf_macros_are_evaluated(dns: KnotServer) -> None:
    found = run(dns, tenant("t", mf("macro.test")))
    verdicts = {f.ip: f.status for f in only(found, "spf-route")}
    assert verdicts == {"127.0.0.21": ERROR, **dict.fromkeys((*GOOD_POOL_IPS,
                                                              *NEW_POOL_IPS), OK)}


@pytest.mark.parametrize(("domain", "reason"), [
    ("many.test", "Too many DNS lookups"),
    ("broken.test", "permerror"),
    ("loop.test", "permerror"),
    ("twice.test", "2 SPF records"),
    ("nospf.test", "no SPF record"),
])
def test_broken_spf_is_an_error_with_its_reason(dns: KnotServer, domain: str,
                                                reason: str) -> None:
    found = run(dns, tenant("t", mf(domain)))
    (spf,) = only(found, "spf")
    assert spf.status == ERROR and reason in spf.reason, spf
    assert not only(found, "spf-route"), "routes are not judged on a broken record"


def test_dkim_keys_by_size_revoked_and_delegated(dns: KnotServer) -> None:
    sd = SendingDomain("good.test", frozenset({DomainRole.DKIM}),
                       ("s2048", "s1024", "s512", "gone", "esp", "absent"))
    found = {f.reason.split(" at ")[-1].split(" ")[0].split(":")[0]: f
             for f in only(run(dns, tenant("t", sd)), "dkim")}
    assert found["s2048._domainkey.good.test"].status == OK
    assert "2048-bit" in found["s2048._domainkey.good.test"].reason
    assert found["s1024._domainkey.good.test"].status == WARNING
    assert found["s512._domainkey.good.test"].status == ERROR
    assert "512-bit RSA key" in found["s512._domainkey.good.test"].reason
    assert found["gone._domainkey.good.test"].status == ERROR
    assert found["esp._domainkey.good.test"].status == OK
    assert found["absent._domainkey.good.test"].status == ERROR
    assert found["s2048._domainkey.good.test"].record.startswith("v=DKIM1; k=rsa; p=MII")


def test_dmarc_and_alignment(dns: KnotServer) -> None:
    t = tenant("t", SendingDomain("good.test", frozenset({DomainRole.FROM})),
               SendingDomain("mail.good.test", frozenset({DomainRole.DKIM}), ("s2048",)),
               SendingDomain("bounce.good.test", frozenset({DomainRole.MAILFROM})))
    found = run(dns, t)
    (dmarc,) = only(found, "dmarc")
    assert dmarc.status == OK and "p=reject" in dmarc.reason
    assert dmarc.record is not None and dmarc.record.startswith("v=DMARC1; p=reject")
    dkim_align, spf_align = only(found, "alignment")
    # adkim=s: mail.good.test is not good.test; aspf=r: bounce.good.test aligns
    assert dkim_align.status == ERROR and "strict" in dkim_align.reason
    assert spf_align.status == OK and "bounce.good.test aligns" in spf_align.reason
    relaxed = run(dns, Tenant("t", Plan.SHARED, domains=("good.test",), sending_domains=(
        SendingDomain("good.test", frozenset({DomainRole.FROM}), align="relaxed"),
        SendingDomain("mail.good.test", frozenset({DomainRole.DKIM}), ("s2048",)))))
    assert only(relaxed, "alignment")[0].status == OK


def test_dmarc_none_and_missing(dns: KnotServer) -> None:
    (narrow,) = only(run(dns, tenant("t", SendingDomain(
        "narrow.test", frozenset({DomainRole.FROM})))), "dmarc")
    assert narrow.status == WARNING and "monitoring only" in narrow.reason
    (missing_,) = only(run(dns, tenant("t", SendingDomain(
        "nospf.test", frozenset({DomainRole.FROM})))), "dmarc")
    assert missing_.status == ERROR and "no DMARC record at _dmarc.nospf.test" in missing_.reason


def test_tracking_hosts(dns: KnotServer) -> None:
    def tracking(host: str) -> Finding:
        (f,) = only(run(dns, tenant("t", SendingDomain(host, frozenset({DomainRole.TRACKING})))),
                    "tracking")
        return f
    assert tracking("click.good.test").status == OK
    other = tracking("click.narrow.test")
    assert other.status == ERROR and "elsewhere.esp.test" in other.reason
    assert tracking("nospf.test").status == ERROR


def test_an_unreachable_dns_gives_unknown_not_missing(dns: KnotServer) -> None:
    lookup = DnsLookup([("127.0.0.1", 9)], timeout=0.3)
    c = DomainChecker(lookup, PyspfEvaluator(lookup), DomainCheckSettings())
    found = c.check_tenant(tenant("t", mf("good.test")), small_esp())
    assert [f.status for f in found] == ["unknown"]


def test_pool_return_path_domains_are_checked(dns: KnotServer) -> None:
    from dataclasses import replace
    inv = small_esp()
    pools = tuple(replace(p, return_path_domain="narrow.test") if p.name == "shared-good"
                  else p for p in inv.pools)
    found = checker(dns).check_return_paths(replace(inv, pools=pools))
    assert {(f.ip, f.status) for f in found if f.ip} == {(ip, ERROR) for ip in GOOD_POOL_IPS}
    assert all(f.check == "return-path" for f in found)
