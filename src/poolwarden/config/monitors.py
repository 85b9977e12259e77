"""The ``[monitors]`` section: DNS blocklist checks and MX rollup, declared once.

Pydantic models (unknown keys are errors, so ``poolwarden validate`` names the file, line
and field of a bad zone name, a negative budget or an answer meaning outside the
vocabulary) and ``resolve_blocklists``, which merges the built-in lists of
``core.blocklists`` with the operator's. Never reads files and never resolves anything.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poolwarden.core.blocklists import (
    DEFAULT_BLOCKLISTS,
    ZONE_NAME,
    AnswerCode,
    Blocklist,
    ListKind,
    Meaning,
)

# Resolvers anyone can use: Spamhaus (and others) refuse them and answer with error
# codes, so a monitor asking them learns nothing; refuse them in the configuration.
PUBLIC_RESOLVERS = frozenset({
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112",
    "208.67.222.222", "208.67.220.220", "64.6.64.6", "64.6.65.6", "94.140.14.14",
    "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111",
    "2606:4700:4700::1001", "2620:fe::fe"})


def nameserver_address(text: str) -> tuple[str, int] | None:
    """``(ip, port)`` of ``IP``, ``IP:PORT``, ``IPv6`` or ``[IPv6]:PORT``; None if neither."""
    host, port = text.strip(), 53
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([0-9.]+):(\d{1,5})", host)
    if match:
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return (host, port) if 0 < port < 65536 else None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnswerSettings(_Section):
    """One answer code of a blocklist and what it means."""

    code: str = Field(description="The A record the list answers, e.g. 127.0.0.2.")
    means: Literal["listed", "error", "ignore"] = Field(
        description="listed (the target is on the list), error (the list could not or would "
        "not answer: unknown, never listed) or ignore (an answer that is no listing).")
    label: str = Field("", description="What the code says, shown in alerts (\"SBL: spam "
                       "source\").")

    @field_validator("code")
    @classmethod
    def _ipv4(cls, value: str) -> str:
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
        return str(address)


class BlocklistSettings(_Section):
    """A DNS blocklist checked by the monitors."""

    name: str = Field(description="List name; a built-in list of the same name is replaced.")
    zone: str = Field(description="The list's DNS zone, e.g. zen.spamhaus.org (or a DQS "
                      "zone with its key).")
    kind: Literal["ip", "domain"] = Field(description="ip (egress IPs, queried as reversed "
                                          "octets) or domain (tenant sending domains).")
    answers: tuple[AnswerSettings, ...] = Field(
        (), description="Answer codes and their meanings. Any answer in 127.255.255.0/24 is an "
        "error whatever this says; a code not listed here counts as unknown, never listed.")
    source: str = Field("", description="Where the codes are documented.")

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone = value.strip().lower().rstrip(".")
        if not ZONE_NAME.fullmatch(zone):
            raise ValueError(f"{value!r} is not a DNS zone name (labels of letters, digits "
                             "and hyphens, separated by dots)")
        return zone


class MonitorSettings(_Section):
    """DNS monitors (monitord): blocklist checks of egress IPs and tenant domains, MX rollup."""

    enabled: bool = Field(
        True, strict=True, description="Run monitord inside poolwarden serve (it runs only "
        "when nameservers is set).")
    nameservers: tuple[str, ...] = Field(
        (), description="The operator's own DNS resolvers the monitors ask, as IP or IP:PORT. "
        "Unset: no monitoring (the system resolver may be a public one, which blocklists "
        "refuse). Well-known public resolvers are refused.")
    timeout: float = Field(2.0, gt=0, le=30, description="Seconds one DNS query may take "
                           "before it is retried.")
    lifetime: float = Field(4.0, gt=0, le=60, description="Seconds one lookup may take in all "
                            "(retries included); after it, the answer is unknown.")
    concurrency: int = Field(50, ge=1, le=1000, description="DNS lookups in flight at once.")
    blocklist_interval: float = Field(
        900.0, ge=10, le=86400, description="Seconds between two blocklist rounds.")
    query_budget: int = Field(
        20000, ge=0, le=10_000_000, description="Blocklist lookups one round may make at "
        "most (list operators' free-use quotas count queries); targets over budget are "
        "checked in the next round first.")
    builtin_blocklists: bool = Field(
        True, strict=True, description="Check the built-in lists: Spamhaus ZEN, SpamCop, "
        "Barracuda, PSBL, Mailspike, UCEPROTECT-1 (IPs) and Spamhaus DBL, SURBL, URIBL "
        "(domains).")
    blocklists: tuple[BlocklistSettings, ...] = Field(
        (), description="Further lists, or replacements of built-in ones by name.")
    disable: tuple[str, ...] = Field((), description="Names of lists not to check.")
    on_listing: Literal["drain", "alert"] = Field(
        "drain", description="What a listed egress IP does: drain (no new mail from it; "
        "mail queued on it is moved off) or alert (only tell the operator).")
    send_when_all_listed: bool = Field(
        False, strict=True, description="When every IP of a route is listed, send from them "
        "anyway instead of deferring the mail.")
    move_queued: bool = Field(
        True, strict=True, description="Move mail Postfix already queued on an IP that is "
        "drained, listed or paused off it: it passes the policy check again (through the "
        "pw-reroute service of poolwarden postfix config --reroute) and leaves by today's "
        "route, or waits. Needs policyd.postfix_config_dir.")
    delist_quiet_period: float = Field(
        3600.0, ge=0, le=30 * 86400, description="Seconds of clear answers (no listed one) "
        "before a delisted IP or domain is restored.")
    mx_cache_size: int = Field(
        100_000, ge=1, le=10_000_000, description="Recipient domains whose MX provider is "
        "remembered at most (least recently used go first).")
    mx_queue_size: int = Field(
        10_000, ge=1, le=1_000_000, description="Recipient domains waiting for an MX lookup at "
        "most; more wait for the next time they are seen.")
    mx_min_ttl: float = Field(60.0, ge=1, le=86400, description="Shortest time an MX answer "
                              "is kept, whatever its TTL.")
    mx_max_ttl: float = Field(86400.0, ge=1, le=30 * 86400, description="Longest time an MX "
                              "answer is kept, whatever its TTL.")

    @field_validator("nameservers")
    @classmethod
    def _own_resolvers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            found = nameserver_address(entry)
            if found is None:
                raise ValueError(f"{entry!r} is not an IP address or IP:PORT ([IPv6]:PORT)")
            if found[0] in PUBLIC_RESOLVERS:
                raise ValueError(f"{entry!r} is a public resolver; blocklists refuse those "
                                 "(use your own resolver)")
        return value


def resolve_blocklists(settings: MonitorSettings) -> tuple[Blocklist, ...]:
    """The lists to check: built-in ones, replaced or extended by name, minus disabled."""
    lists: dict[str, Blocklist] = ({b.name: b for b in DEFAULT_BLOCKLISTS}
                                   if settings.builtin_blocklists else {})
    for entry in settings.blocklists:
        lists[entry.name] = Blocklist(
            entry.name, entry.zone, ListKind(entry.kind),
            {a.code: AnswerCode(Meaning(a.means), a.label) for a in entry.answers},
            entry.source)
    return tuple(b for name, b in lists.items() if name not in settings.disable)
