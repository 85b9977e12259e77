"""Blocklist answers and listing states, pure: what an answer means on each list, and when
a listing starts and ends (error answers and timeouts change nothing)."""

from __future__ import annotations

import pytest

from poolwarden.core.blocklists import (
    DEFAULT_BLOCKLISTS,
    Change,
    Finding,
    ListKind,
    Meaning,
    Outcome,
    Status,
    interpret,
    listed_ips,
    observe,
)

ZEN = next(b for b in DEFAULT_BLOCKLISTS if b.name == "spamhaus-zen")
DBL = next(b for b in DEFAULT_BLOCKLISTS if b.name == "spamhaus-dbl")
URIBL = next(b for b in DEFAULT_BLOCKLISTS if b.name == "uribl")


def test_query_names():
    assert ZEN.query_name("203.0.113.7") == "7.113.0.203.zen.spamhaus.org"
    assert DBL.query_name("Spammy.Example.") == "spammy.example.dbl.spamhaus.org"


@pytest.mark.parametrize(("blocklist", "codes", "status"), [
    (ZEN, ["127.0.0.2"], Status.LISTED),
    (ZEN, ["127.0.0.4", "127.0.0.10"], Status.LISTED),
    (ZEN, ["127.255.255.254"], Status.UNKNOWN),  # public resolver: never listed
    (ZEN, ["127.0.0.2", "127.255.255.255"], Status.UNKNOWN),  # an error spoils the answer
    (ZEN, ["127.0.0.99"], Status.UNKNOWN),  # undocumented code
    (ZEN, ["192.0.2.1"], Status.UNKNOWN),  # not a DNSBL answer
    (DBL, ["127.0.1.255"], Status.UNKNOWN),  # DBL's own error code
    (URIBL, ["127.0.0.1"], Status.UNKNOWN),  # URIBL: query refused
    (URIBL, ["127.0.0.2"], Status.LISTED),
])
def test_interpret(blocklist, codes, status):
    assert interpret(blocklist, "t", Outcome.ANSWER, codes).status is status


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL])
def test_failed_lookups_are_unknown(outcome):
    assert interpret(ZEN, "t", outcome).status is Status.UNKNOWN


@pytest.mark.parametrize("outcome", [Outcome.NXDOMAIN, Outcome.NODATA])
def test_no_record_is_clear(outcome):
    assert interpret(ZEN, "t", outcome).status is Status.CLEAR


def test_every_builtin_list_documents_a_listed_code():
    for b in DEFAULT_BLOCKLISTS:
        assert any(a.means is Meaning.LISTED for a in b.answers.values()), b.name


def F(status):
    return Finding("192.0.2.1", "spamhaus-zen", status, ("127.0.0.2",), "SBL")


def test_listing_lifecycle_with_quiet_period():
    state, change = observe(None, F(Status.LISTED), ListKind.IP, now=0, quiet=600)
    assert change is Change.LISTED and state is not None and state.listed
    state, change = observe(state, F(Status.UNKNOWN), ListKind.IP, now=100, quiet=600)
    assert change is None and state.listed  # unknown changes nothing
    state, change = observe(state, F(Status.CLEAR), ListKind.IP, now=200, quiet=600)
    assert change is None and state.listed and state.clear_since == 200
    state, change = observe(state, F(Status.UNKNOWN), ListKind.IP, now=500, quiet=600)
    assert state.clear_since == 200  # an unknown does not restart the quiet period
    state, change = observe(state, F(Status.CLEAR), ListKind.IP, now=800, quiet=600)
    assert change is Change.DELISTED and not state.listed
    assert listed_ips([state]) == {}


def test_unknown_never_lists_and_clear_without_listing_stores_nothing():
    assert observe(None, F(Status.UNKNOWN), ListKind.IP, now=0, quiet=0) == (None, None)
    assert observe(None, F(Status.CLEAR), ListKind.IP, now=0, quiet=0) == (None, None)
