"""DNS blocklists as data: what each list's answers mean, and what a round of checks implies.

A ``Blocklist`` names its zone, whether it lists IPs or domains, and the meaning of each
answer code (``listed``, ``error`` or ``ignore``). ``interpret`` turns one lookup's outcome
into a ``Finding`` with three possible states: listed, clear, unknown. Error codes
(127.255.255.0/24 on every list, plus each list's own), answers outside 127.0.0.0/8, codes
the list does not document, timeouts and SERVFAIL are all *unknown*, never *listed*:
a misconfigured resolver must not drain an IP.

``observe`` folds a finding into a listing's state: a listing starts at the first listed
answer and ends only after ``quiet`` seconds of clear answers with no listed one (a
list that flaps does not flap our routing). Unknown answers change nothing. Pure: no DNS,
no clock (times are arguments).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class ListKind(StrEnum):
    IP = "ip"  # queried as the reversed IPv4 octets under the zone
    DOMAIN = "domain"  # queried as the domain under the zone


class Meaning(StrEnum):
    LISTED = "listed"  # the target is on the list
    ERROR = "error"  # the list refused or could not answer: unknown
    IGNORE = "ignore"  # an answer that is not a listing (an allowlist or info code)


class Status(StrEnum):
    LISTED = "listed"
    CLEAR = "clear"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    """What the resolver got back for one query."""

    ANSWER = "answer"  # A records (the codes)
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    TIMEOUT = "timeout"
    SERVFAIL = "servfail"  # any other DNS failure (refused, no server answered)


@dataclass(frozen=True, slots=True)
class AnswerCode:
    means: Meaning
    label: str = ""


# Answers in this network are errors on every list (Spamhaus: typo in the zone,
# query through a public or open resolver, excess volume); never a listing.
ERROR_NET = ipaddress.ip_network("127.255.255.0/24")
LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")
ZONE_NAME = re.compile(r"(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+")


@dataclass(frozen=True, slots=True)
class Blocklist:
    name: str
    zone: str
    kind: ListKind
    answers: Mapping[str, AnswerCode] = field(default_factory=dict)
    source: str = ""

    def query_name(self, target: str) -> str:
        """The DNS name to ask for ``target`` (an IPv4 address or a domain)."""
        if self.kind is ListKind.IP:
            return ".".join(reversed(target.split("."))) + "." + self.zone
        return target.lower().rstrip(".") + "." + self.zone


@dataclass(frozen=True, slots=True)
class Finding:
    """One target checked against one list."""

    target: str
    list: str
    status: Status
    codes: tuple[str, ...] = ()
    meaning: str = ""  # labels of the codes, or why the answer is unknown
    reason: str = ""  # the list's TXT text, when it gave one

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "list": self.list, "status": self.status.value,
                "codes": list(self.codes), "meaning": self.meaning, "reason": self.reason}


def interpret(blocklist: Blocklist, target: str, outcome: Outcome,
              codes: Iterable[str] = (), reason: str = "") -> Finding:
    """What one lookup says about ``target`` on ``blocklist``."""
    if outcome in (Outcome.NXDOMAIN, Outcome.NODATA):
        return Finding(target, blocklist.name, Status.CLEAR)
    if outcome is not Outcome.ANSWER:
        return Finding(target, blocklist.name, Status.UNKNOWN,
                       meaning=f"lookup failed ({outcome.value}): unknown, not listed")
    found = tuple(sorted(set(codes), key=_sort_key))
    listed: list[str] = []
    errors: list[str] = []
    for code in found:
        try:
            address = ipaddress.ip_address(code)
        except ValueError:
            errors.append(f"{code}: not an address")
            continue
        known = blocklist.answers.get(code)
        if address in ERROR_NET or (known is not None and known.means is Meaning.ERROR):
            errors.append(f"{code}: {known.label if known and known.label else 'error code'}")
        elif known is not None and known.means is Meaning.LISTED:
            listed.append(f"{code}: {known.label or 'listed'}")
        elif known is not None:
            continue  # IGNORE
        elif address not in LOOPBACK_NET:
            errors.append(f"{code}: outside 127.0.0.0/8 (a resolver rewriting answers?)")
        else:
            errors.append(f"{code}: not a code {blocklist.name} documents")
    if errors:  # an error anywhere makes the whole answer untrustworthy
        return Finding(target, blocklist.name, Status.UNKNOWN, found,
                       "; ".join(errors) + ": unknown, not listed")
    if listed:
        return Finding(target, blocklist.name, Status.LISTED, found, "; ".join(listed), reason)
    return Finding(target, blocklist.name, Status.CLEAR, found)


def _sort_key(code: str) -> tuple[int, str]:
    try:
        return (int(ipaddress.ip_address(code)), code)
    except ValueError:
        return (-1, code)


@dataclass(frozen=True, slots=True)
class Listing:
    """The standing of one target on one list, as the monitor keeps it."""

    target: str
    list: str
    kind: ListKind
    listed: bool
    since: float  # when the current listing (or clearance) began
    last_listed: float | None = None  # the last listed answer
    clear_since: float | None = None  # first clear answer after the last listed one
    codes: tuple[str, ...] = ()
    meaning: str = ""
    reason: str = ""
    checked_at: float = 0.0


class Change(StrEnum):
    LISTED = "listed"
    DELISTED = "delisted"


def observe(previous: Listing | None, finding: Finding, kind: ListKind, *, now: float,
            quiet: float) -> tuple[Listing | None, Change | None]:
    """Fold one finding into a listing; returns the new state and the change it makes."""
    if finding.status is Status.UNKNOWN:
        return (replace(previous, checked_at=now) if previous else None), None
    if finding.status is Status.LISTED:
        if previous is None or not previous.listed:
            return Listing(finding.target, finding.list, kind, True, now, now, None,
                           finding.codes, finding.meaning, finding.reason, now), Change.LISTED
        return replace(previous, last_listed=now, clear_since=None, codes=finding.codes,
                       meaning=finding.meaning, reason=finding.reason or previous.reason,
                       checked_at=now), None
    if previous is None or not previous.listed:
        return (replace(previous, checked_at=now) if previous else None), None
    clear_since = previous.clear_since if previous.clear_since is not None else now
    if now - clear_since >= quiet:
        return replace(previous, listed=False, since=now, clear_since=clear_since,
                       checked_at=now), Change.DELISTED
    return replace(previous, clear_since=clear_since, checked_at=now), None


def listed_ips(listings: Iterable[Listing]) -> dict[str, str]:
    """IP → what the lists that list it say (the snapshot's ``listed``)."""
    out: dict[str, list[str]] = {}
    for s in listings:
        if s.listed and s.kind is ListKind.IP:
            out.setdefault(s.target, []).append(f"{s.list}: {s.meaning}")
    return {ip: "; ".join(sorted(parts)) for ip, parts in out.items()}


def _codes(table: Mapping[str, tuple[Meaning, str]]) -> dict[str, AnswerCode]:
    return {code: AnswerCode(means, label) for code, (means, label) in table.items()}


_L, _E = Meaning.LISTED, Meaning.ERROR
_SPAMHAUS_ERRORS = {
    "127.255.255.252": (_E, "typo in the DNSBL zone name"),
    "127.255.255.254": (_E, "query through a public or open resolver"),
    "127.255.255.255": (_E, "excessive number of queries"),
}

# The built-in lists; zones and codes from each list operator's usage page (`source`).
DEFAULT_BLOCKLISTS: tuple[Blocklist, ...] = (
    Blocklist("spamhaus-zen", "zen.spamhaus.org", ListKind.IP, _codes({
        "127.0.0.2": (_L, "SBL: spam source"), "127.0.0.3": (_L, "SBL CSS: snowshoe spam"),
        "127.0.0.4": (_L, "XBL: exploited host"), "127.0.0.5": (_L, "XBL: exploited host"),
        "127.0.0.6": (_L, "XBL: exploited host"), "127.0.0.7": (_L, "XBL: exploited host"),
        "127.0.0.9": (_L, "SBL DROP: hijacked network"),
        "127.0.0.10": (_L, "PBL: ISP-maintained end-user range"),
        "127.0.0.11": (_L, "PBL: Spamhaus-maintained end-user range"),
        **_SPAMHAUS_ERRORS}), "Spamhaus DNSBL usage (return codes)"),
    Blocklist("spamcop", "bl.spamcop.net", ListKind.IP,
              _codes({"127.0.0.2": (_L, "SpamCop: reported spam source")}), "spamcop.net"),
    Blocklist("barracuda", "b.barracudacentral.org", ListKind.IP,
              _codes({"127.0.0.2": (_L, "Barracuda BRBL: poor reputation")}),
              "barracudacentral.org"),
    Blocklist("psbl", "psbl.surriel.com", ListKind.IP,
              _codes({"127.0.0.2": (_L, "PSBL: spam trap hits")}), "psbl.org"),
    Blocklist("mailspike", "bl.mailspike.net", ListKind.IP,
              _codes({"127.0.0.2": (_L, "Mailspike BL: spam wave source"),
                      "127.0.0.10": (_L, "Mailspike: worst reputation"),
                      "127.0.0.11": (_L, "Mailspike: very bad reputation"),
                      "127.0.0.12": (_L, "Mailspike: bad reputation")}), "mailspike.org"),
    Blocklist("uceprotect-1", "dnsbl-1.uceprotect.net", ListKind.IP,
              _codes({"127.0.0.2": (_L, "UCEPROTECT level 1: the IP itself")}),
              "uceprotect.net"),
    Blocklist("spamhaus-dbl", "dbl.spamhaus.org", ListKind.DOMAIN, _codes({
        "127.0.1.2": (_L, "DBL: spam domain"), "127.0.1.4": (_L, "DBL: phish domain"),
        "127.0.1.5": (_L, "DBL: malware domain"), "127.0.1.6": (_L, "DBL: botnet C&C domain"),
        "127.0.1.102": (_L, "DBL: abused legit spam"),
        "127.0.1.103": (_L, "DBL: abused spammed redirector"),
        "127.0.1.104": (_L, "DBL: abused legit phish"),
        "127.0.1.105": (_L, "DBL: abused legit malware"),
        "127.0.1.106": (_L, "DBL: abused legit botnet C&C"),
        "127.0.1.255": (_E, "DBL: an IP address was queried"),
        **_SPAMHAUS_ERRORS}), "Spamhaus DBL return codes"),
    Blocklist("surbl", "multi.surbl.org", ListKind.DOMAIN, _codes({
        "127.0.0.8": (_L, "SURBL: phishing"), "127.0.0.16": (_L, "SURBL: malware"),
        "127.0.0.24": (_L, "SURBL: phishing, malware"), "127.0.0.64": (_L, "SURBL: abuse"),
        "127.0.0.72": (_L, "SURBL: phishing, abuse"), "127.0.0.80": (_L, "SURBL: malware, abuse"),
        "127.0.0.88": (_L, "SURBL: phishing, malware, abuse"),
        "127.0.0.128": (_L, "SURBL: cracked site"),
        "127.0.0.1": (_E, "SURBL: query refused (blocked resolver)")}), "surbl.org lists"),
    Blocklist("uribl", "multi.uribl.com", ListKind.DOMAIN, _codes({
        "127.0.0.2": (_L, "URIBL black"), "127.0.0.4": (_L, "URIBL grey"),
        "127.0.0.6": (_L, "URIBL black, grey"), "127.0.0.8": (_L, "URIBL red"),
        "127.0.0.10": (_L, "URIBL black, red"), "127.0.0.12": (_L, "URIBL grey, red"),
        "127.0.0.14": (_L, "URIBL black, grey, red"),
        "127.0.0.1": (_E, "URIBL: query refused (blocked resolver)")}), "uribl.com about"),
)
