"""MX rollup against a real Knot DNS: company domains hosted at the test providers are
recognised by their lowest-preference MX; implicit, null and missing MX are "other"; the
cache keeps answers for their TTL, refreshes domains still in use, forgets the rest and
stays within its bounds."""

from __future__ import annotations

import asyncio

from poolwarden.adapters.resolver import DnsResolver
from poolwarden.core.model import Provider
from poolwarden.core.providers import DEFAULT_PROVIDERS, MxVerdict, ProviderIndex
from poolwarden.services.monitors.checks import MxAnswer, resolve_mx
from poolwarden.services.monitors.mx_cache import MxCache
from tests.services.monitors.zones import PROVIDER_MX

INDEX = ProviderIndex([Provider(name, (f"{name}-mail.test",), (suffix,), True)
                       for name, suffix in PROVIDER_MX.items()])


def resolve(port: int, domains: list[str]) -> dict[str, MxAnswer]:
    res = DnsResolver([("127.0.0.1", port)], timeout=0.5, lifetime=1.0)
    return {a.verdict.domain: a for a in asyncio.run(resolve_mx(res, INDEX, domains))}


def test_company_domains_are_recognised_by_mx(knot):
    found = resolve(knot.port, ["corp-on-google.test", "Corp-On-M365.test", "corp-on-yahoo.test",
                                "smallbiz.test", "nomx.test", "nullmx.test",
                                "doesnotexist.test", "backup-at-google.test"])
    provider = {d: a.verdict.provider for d, a in found.items()}
    assert provider == {
        "corp-on-google.test": "google", "corp-on-m365.test": "microsoft",
        "corp-on-yahoo.test": "yahoo", "smallbiz.test": "other", "nomx.test": "other",
        "nullmx.test": "other", "doesnotexist.test": "other",
        "backup-at-google.test": "other",  # Google is only the backup MX
    }
    assert found["corp-on-google.test"].verdict.host == "aspmx.l.google.test"
    assert found["corp-on-google.test"].ttl == 5
    assert "null MX" in found["nullmx.test"].verdict.how
    assert "does not exist" in found["doesnotexist.test"].verdict.how
    assert all(a.ok for a in found.values())


def test_failed_lookup_is_not_ok(knot):
    res = DnsResolver([("127.0.0.1", 9)], timeout=0.2, lifetime=0.3)  # nothing listens
    [answer] = asyncio.run(resolve_mx(res, INDEX, ["corp-on-google.test"]))
    assert not answer.ok and answer.verdict.provider == "other"


def _answer(domain: str, provider: str, ttl: float = 300.0, ok: bool = True) -> MxAnswer:
    return MxAnswer(MxVerdict(domain, provider, f"mx.{domain}", "test"), ttl, ok, 0.001)


def test_cache_queues_only_unknown_domains_and_publishes_learned():
    index = ProviderIndex(DEFAULT_PROVIDERS)
    cache = MxCache(size=10, queue_size=3, min_ttl=60, max_ttl=3600)
    cache.note(["gmail.com", "Corp.example", "corp.example", "b.example", "c.example",
                "d.example", "localhost"], index)
    assert list(cache.queue) == ["corp.example", "b.example", "c.example"]  # bounded
    assert cache.dropped == 1
    assert cache.due(0, limit=2) == ["corp.example", "b.example"]
    version = cache.version
    cache.store([_answer("corp.example", "google"), _answer("b.example", "other")], now=0)
    assert cache.learned() == {"corp.example": "google"}
    assert cache.version > version


def test_cache_ttl_is_clamped_refreshed_when_seen_and_forgotten_when_not():
    index = ProviderIndex(DEFAULT_PROVIDERS)
    cache = MxCache(size=10, min_ttl=60, max_ttl=3600)
    cache.store([_answer("used.example", "google", ttl=5),
                 _answer("idle.example", "google", ttl=10**6)], now=0)
    assert cache.entries["used.example"].expires == 60  # min_ttl
    assert cache.entries["idle.example"].expires == 3600  # max_ttl
    cache.note(["used.example"], index)
    assert cache.due(50, limit=10) == []  # nothing near expiry yet (refresh at 90 %)
    assert cache.due(55, limit=10) == ["used.example"]  # refreshed before it expires
    assert cache.due(3600, limit=10) == ["used.example"]
    assert "idle.example" not in cache.entries  # expired and not seen: dropped
    assert cache.learned() == {"used.example": "google"}


def test_cache_failure_keeps_last_good_answer_and_size_is_bounded():
    cache = MxCache(size=2, min_ttl=60, max_ttl=3600)
    cache.store([_answer("a.example", "google")], now=0)
    cache.store([_answer("a.example", "other", ok=False)], now=10)
    assert cache.learned() == {"a.example": "google"}
    assert cache.entries["a.example"].expires == 70  # retried after min_ttl
    cache.store([_answer("b.example", "yahoo"), _answer("c.example", "microsoft")], now=20)
    assert len(cache.entries) == 2 and "a.example" not in cache.entries  # oldest out


def test_provider_index_explains_how_a_domain_was_recognised():
    index = ProviderIndex(DEFAULT_PROVIDERS).with_learned({"corp.example": "google"})
    assert index.for_domain("corp.example") == "google"
    assert index.explain("corp.example")[1].startswith("MX of corp.example is at google")
    assert "one of google's domains" in index.explain("gmail.com")[1]
    assert "subdomain" in index.explain("mail.yahoo.com")[1]
    assert index.explain("smallbiz.example")[0] == "other"
