"""The configuration file's schema: every setting declared once, with type, default and help.

Pydantic models only; unknown keys are errors and every model is frozen. The
``[thresholds]`` section is generated from ``core.thresholds.Thresholds`` so a
threshold is never declared twice. ``iter_settings`` lists every setting for
``poolwarden config defaults`` and the docs. Never reads files (load.py does).
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator
from dataclasses import fields
from enum import Enum
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model, field_validator

from poolwarden.config.domain_settings import (
    DmarcSettings,
    DomainCheckSettings,
    SendingDomainSettings,
)
from poolwarden.config.monitors import MonitorSettings, nameserver_address
from poolwarden.core.model import IpState, Plan, PoolKind, Tier
from poolwarden.core.thresholds import Thresholds

TenantLookup = Literal["sasl", "sender_domain", "client_address"]
DEFAULT_TENANT_LOOKUP: tuple[TenantLookup, ...] = ("sasl", "sender_domain", "client_address")


class Section(BaseModel):
    """Base of every model in the file: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(Section):
    """Where poolwarden keeps events, reputation and tier history."""

    url: str | None = Field(
        None, description="SQLAlchemy URL of the store, e.g. sqlite:///state/poolwarden.db or "
        "postgresql+psycopg://user@host/db. Unset: the SQLite file poolwarden.db beside the "
        "configuration file. A relative SQLite path is resolved against the configuration "
        "file's directory.")


class RoutingSettings(Section):
    """How the routing agent finds a message's tenant, and what it answers when it cannot."""

    tenant_lookup: tuple[TenantLookup, ...] = Field(
        DEFAULT_TENANT_LOOKUP, min_length=1, description="How a message is matched to its "
        "tenant, tried in this order: sasl (the SASL login name), sender_domain (the envelope "
        "sender's domain), client_address (the submitting client's IP address).")
    unknown_tenant: Literal["defer", "reject"] = Field(
        "defer", description="Answer for mail no tenant claims: defer (4xx, the mail stays "
        "queued at the client) or reject (5xx).")
    off_platform_action: Literal["reject", "defer"] = Field(
        "reject", description="Answer for mail from a tenant that is off the platform: reject "
        "(5xx) or defer (4xx).")
    skip_spf_unauthorized: bool = Field(
        False, strict=True, description="Never route a message through an IP that the SPF "
        "record of its MAIL FROM domain does not authorize (as last checked by poolwarden "
        "domains): the route's other IPs, then the overflow route, else defer.")

    @field_validator("tenant_lookup")
    @classmethod
    def _no_repeats(cls, value: tuple[TenantLookup, ...]) -> tuple[TenantLookup, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a lookup method more than once")
        return value


class PolicydSettings(Section):
    """The routing agent (policyd) that Postfix asks, per recipient, for the egress IP."""

    listen: tuple[str, ...] = Field(
        ("unix:/var/spool/postfix/private/poolwarden",), min_length=1, description="Where "
        "policyd listens: unix:PATH (mode 0660, group postfix; the default, under Postfix's "
        "queue directory, which Postfix names unix:private/poolwarden) or tcp:HOST:PORT "
        "(loopback unless allow_remote; any local process can connect to it, while the unix "
        "socket admits only root and the postfix group). "
        "The --policy option of poolwarden serve replaces this list.")
    node: str | None = Field(
        None, description="Name of this routing node in the decision log. Unset: the host name.")
    request_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a started request may take to arrive whole "
        "before the connection is closed (slowloris bound).")
    idle_timeout: float = Field(
        330.0, gt=0, le=86400, description="Seconds a connection may stay idle between "
        "requests before poolwarden closes it. Keep it above Postfix's "
        "smtpd_policy_service_max_idle (300 s by default; poolwarden postfix check compares "
        "them), so Postfix closes its own idle connections first and only a client that is "
        "not Postfix meets this limit.")
    max_connections: int = Field(
        1000, ge=1, le=100_000, description="Open policy connections at most (Postfix's "
        "default_process_limit is 100 smtpd processes per node, one connection each). A new "
        "connection over it sheds the least recently active one (those that never sent a "
        "request first), so a flood of idle connections cannot lock Postfix out.")
    max_connections_per_peer: int = Field(
        250, ge=1, le=100_000, description="Open policy connections at most from one peer "
        "(a TCP client address, or a unix-socket client's user id); over it the peer's least "
        "recently active connection is shed. Above Postfix's default_process_limit.")
    allow_remote: bool = Field(
        False, description="Accept TCP policy clients from non-loopback addresses.")
    reload_interval: float = Field(
        0.5, gt=0, le=60, description="Seconds between checks of the store for tier moves and "
        "overrides; a change is routed within this interval plus the rebuild time.")
    refresh_interval: float = Field(
        60.0, gt=0, le=3600, description="Seconds between full snapshot rebuilds (picks up "
        "new volume advice for auto-plan tenants).")
    evaluate_interval: float = Field(
        60.0, gt=0, le=86400, description="Seconds between tier evaluations by the embedded "
        "reputation engine of poolwarden serve.")
    reconcile_interval: float = Field(
        3600.0, ge=0, le=86400, description="Seconds between reloads of the reputation "
        "engine's day counters from the store by poolwarden serve (it is fed every batch it "
        "stores; this adds what other processes stored: CLI imports, other nodes); 0 never.")
    flush_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between writes of the decision log to the "
        "store (batched, off the routing path).")
    postfix_config_dir: str | None = Field(
        None, description="Configuration directory of the Postfix instance (postfix -c DIR) "
        "used by poolwarden hold release and poolwarden postfix check. Unset: Postfix's "
        "default.")


_LISTEN = re.compile(r"tcp:\[?[^\s\]]+\]?:\d{1,5}|unix:/\S+")


class FeedbackSettings(Section):
    """Feedback mail (bounces and complaints): VERP return paths, the LMTP listener, trust."""

    verp_secrets: tuple[SecretStr, ...] = Field(
        (), description="Keys of the HMAC that signs VERP return-path tokens, at least 16 "
        "characters each (checked when feedback is processed, so that no key is ever echoed "
        "in a configuration error); the first signs, every one verifies (rotate by putting the "
        "new key first and dropping the old one once its mail can no longer bounce). Never "
        "printed or logged. Prefer verp_secrets_file. Without any key every bounce is "
        "untrusted.")
    verp_secrets_file: str | None = Field(
        None, description="File holding the VERP keys instead of verp_secrets, one per line "
        "(blank lines and # comments ignored); relative to the configuration file's "
        "directory. Keep it readable by poolwarden only.")
    verp_domain: str | None = Field(
        None, description="Domain of the VERP return paths (b+TOKEN@DOMAIN), delivered by "
        "Postfix to the LMTP listener. When set, tokens found inside a message count only at "
        "this domain (or a pool's return_path_domain).")
    fbl_sources: tuple[str, ...] = Field(
        (), description="Senders whose complaint reports (ARF, JMRP) are trusted: addresses "
        "(staff@hotmail.com) or domains (feedback.yahoo.com, which covers subdomains), matched "
        "against the envelope sender and the From address. A complaint from anyone else is "
        "stored as untrusted and moves no tenant. With fbl_require_dkim, list the domain that "
        "signs the reports (DKIM d=): a From address is easy to forge, the signature is not.")
    fbl_require_dkim: bool = Field(
        True, strict=True, description="Trust a complaint only when it also carries a valid "
        "DKIM signature whose signing domain (d=) is the matching fbl_sources entry's domain "
        "or a subdomain of it. A complaint whose signature is missing, does not verify or is "
        "by another domain is stored as untrusted with that reason. A DNS failure while "
        "fetching the key stores nothing: the LMTP listener answers 451 (Postfix retries) and "
        "poolwarden ingest mail reports the file as unreadable. Turn off only for an FBL that "
        "does not sign its reports: the From allowlist is then the only gate.")
    dkim_nameservers: tuple[str, ...] = Field(
        (), description="DNS servers asked for DKIM keys, as IP or IP:PORT. Unset: the "
        "system resolver (/etc/resolv.conf).")
    dkim_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds one DKIM key lookup may take before it counts "
        "as a temporary failure.")
    local_reporting_mtas: tuple[str, ...] = Field(
        (), description="Host names of our own MTAs (their Reporting-MTA in DSNs). Their "
        "bounces are stored as trusted feedback but add no events: the log ingester already "
        "counts those outcomes from the Postfix logs.")
    max_message_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=10 * 1024 * 1024, description="Largest feedback message "
        "accepted, in bytes; the LMTP listener refuses larger ones at DATA (552) and poolwarden "
        "ingest mail records them as rejected.")
    max_events_per_message: int = Field(
        50, ge=1, le=100_000, description="Recipients of one VERP token (one sent message) "
        "that may count against its tenant; more feedback naming the same token is stored as "
        "untrusted (a recipient replaying a genuine token cannot bounce a tenant down).")
    lmtp_listen: str = Field(
        "tcp:127.0.0.1:10041", description="Where the feedback LMTP listener listens: "
        "tcp:HOST:PORT (loopback clients only) or unix:PATH (mode 0660, group postfix).")

    @field_validator("lmtp_listen")
    @classmethod
    def _listen_form(cls, value: str) -> str:
        if not _LISTEN.fullmatch(value):
            raise ValueError("must be tcp:HOST:PORT or unix:/PATH")
        return value

    @field_validator("dkim_nameservers")
    @classmethod
    def _nameserver_form(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if nameserver_address(entry) is None:
                raise ValueError(f"{entry!r} is not an IP address or IP:PORT ([IPv6]:PORT)")
        return value


class IngestSettings(Section):
    """Outcome ingestion inside poolwarden serve: Postfix logs followed, feedback LMTP."""

    logs: tuple[str, ...] = Field(
        (), description="Postfix log files poolwarden serve follows (maillog_file or syslog), "
        "exactly once across restarts and rotation, like poolwarden ingest log. Relative "
        "paths are resolved against the configuration file's directory. Empty: no log is "
        "followed. Changes take effect at the next start, not on SIGHUP.")
    poll_interval: float = Field(
        0.5, gt=0, le=60, description="Seconds between two reads of the followed logs.")
    lmtp: bool = Field(
        False, strict=True, description="Run the feedback LMTP listener (feedback.lmtp_listen) "
        "inside poolwarden serve, instead of poolwarden ingest lmtp. Changes take effect at "
        "the next start.")
    retry_interval: float = Field(
        30.0, gt=0, le=3600, description="Seconds before poolwarden serve tries again to start "
        "a log follower or the LMTP listener that could not start (store unreachable, address "
        "in use); routing goes on meanwhile.")


class TrapSettings(Section):
    """The operator's own spam traps: any delivery or attempt to them is a trap hit."""

    addresses: tuple[str, ...] = Field(
        (), description="Trap addresses (case-insensitive): mail to any of them counts as a "
        "trap hit for the tenant and egress IP that sent it.")
    domains: tuple[str, ...] = Field(
        (), description="Trap domains: mail to any address at one of them, or at a subdomain, "
        "is a trap hit.")


class AlertSettings(Section):
    """Alerts to operators by webhook (JSON POST) and e-mail, each recorded in the store."""

    enabled: bool = Field(
        True, strict=True, description="Run the alert loop inside poolwarden serve. Without a "
        "webhook URL or an SMTP relay, alerts are only recorded (dashboard, API).")
    base_url: str = Field(
        "http://127.0.0.1:8025", description="Address of the dashboard as operators reach it; "
        "each alert links to the page that explains it (BASE/tenants/NAME, BASE/ips/ADDR).")
    poll_interval: float = Field(
        30.0, gt=0, le=3600, description="Seconds between two checks for alert conditions.")
    renotify_interval: float = Field(
        21600.0, ge=60, le=30 * 86400, description="Seconds after which a condition that is "
        "still true alerts again; until then (or until it clears) it alerts once.")
    webhook_urls: tuple[str, ...] = Field(
        (), description="URLs every alert is POSTed to as JSON (http:// or https://).")
    webhook_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds one webhook request may take.")
    retries: int = Field(
        3, ge=0, le=10, description="Attempts after the first when a webhook answers 5xx, 429 "
        "or cannot be reached, or the SMTP relay fails temporarily.")
    retry_backoff: float = Field(
        1.0, gt=0, le=600, description="Seconds before the first retry; doubled for each "
        "further one.")
    smtp_host: str | None = Field(
        None, description="SMTP relay alerts are mailed through. Unset: no e-mail alerts.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP relay.")
    smtp_starttls: bool = Field(
        False, strict=True, description="Use STARTTLS with the relay (required when the relay "
        "is not on this host).")
    smtp_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds one SMTP conversation may take.")
    mail_from: str = Field(
        "poolwarden@localhost", description="Envelope sender and From address of alert mail.")
    mail_to: tuple[str, ...] = Field(
        (), description="Recipients of alert mail; empty: no e-mail alerts.")
    rate_burst: int = Field(
        20, ge=1, le=10_000, description="Alerts a channel (webhook, email) may send at once "
        "before the rate limit applies (token bucket size).")
    rate_per_hour: float = Field(
        60.0, gt=0, le=100_000, description="Alerts per hour a channel sends once its burst is "
        "spent; the others are recorded as suppressed and counted.")
    neighbour_share: float = Field(
        0.5, gt=0, le=1, description="Bad neighbour: a tenant whose harm share of a shared IP's "
        "hard bounces, complaints and trap hits (over the tier window) is above this.")
    neighbour_min_signals: int = Field(
        10, ge=1, le=1_000_000, description="Bad signals (hard bounces + complaints + trap "
        "hits) a shared IP needs in the window before any tenant on it is called a bad "
        "neighbour.")
    ingest_lag_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Alert when the log ingester is this many bytes "
        "behind Postfix's log.")
    ingest_lag_seconds: float = Field(
        300.0, gt=0, le=86400, description="Alert when the log ingester has been behind for "
        "this many seconds.")
    warmup_stall_days: int = Field(
        3, ge=1, le=60, description="Alert when an IP's warm-up stage has not advanced for "
        "this many days.")

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")


def _threshold_fields() -> dict[str, Any]:
    hints = get_type_hints(Thresholds)
    out: dict[str, Any] = {}
    for f in fields(Thresholds):
        meta = f.metadata
        extra = {"source": meta["source"]} if meta.get("source") else None
        out[f.name] = (hints[f.name], Field(f.default, description=meta["help"], ge=meta.get("ge"),
                                            le=meta.get("le"), json_schema_extra=extra))
    return out


_THRESHOLDS_DOC = ("Reputation thresholds and evidence floors; each tier move names the "
                   "threshold that caused it.")


class _StrictSection(Section):
    """Numbers and booleans as TOML wrote them: 7.0 is not an integer, 1 is not a boolean."""

    model_config = ConfigDict(strict=True)


if TYPE_CHECKING:
    class ThresholdSettings(_StrictSection):
        """Typed as a plain section; the real model is generated below."""
else:
    ThresholdSettings = create_model("ThresholdSettings", __base__=_StrictSection,
                                     __doc__=_THRESHOLDS_DOC, **_threshold_fields())


class ReactionSettings(Section):
    """Reaction rules: provider replies that pause, cap or reroute traffic automatically."""

    builtin_rules: bool = Field(
        True, strict=True, description="Use poolwarden's built-in rules for Google, "
        "Microsoft, Yahoo/AOL and generic reputation deferrals (the package file "
        "config/builtin/reaction_rules.toml, which cites its sources). A rule in rule_files "
        "with the same name replaces the built-in one.")
    rule_files: tuple[str, ...] = Field(
        (), description="Reaction rule files (TOML, [[rules]] tables), relative to the "
        "configuration file's directory, loaded after the built-in rules in this order. "
        "Checked by poolwarden validate; a bad file on SIGHUP keeps the running rules.")
    disable: tuple[str, ...] = Field(
        (), description="Names of rules (built-in or from rule_files) not to use.")


class WarmupSettings(Section):
    """Warm-up of new egress IPs (state warming) and new sending domains: daily caps."""

    schedule_files: tuple[str, ...] = Field(
        (), description="Warm-up schedule files (TOML: a [caps] table mapping each provider to "
        "its daily cap per stage), relative to the configuration file's directory. Loaded "
        "after the built-in schedules sparkpost and week-one; a file may replace a built-in "
        "by using its name. Checked by poolwarden validate.")
    ip_schedule: str = Field(
        "sparkpost", description="Schedule of an egress IP in state warming that names none "
        "(ips[].warmup_schedule).", json_schema_extra={"source": "SparkPost docs"})
    domain_schedule: str = Field(
        "week-one", description="Schedule of a tenant's new sending domain (tenants[]."
        "warmup_domains).", json_schema_extra={"source": "PowerMTA guide (third-party)"})
    advance_fraction: float = Field(
        0.9, gt=0, le=1, description="A stage advances only after a day that delivered more "
        "than this fraction of the stage's cap at that provider (and the IP's reputation "
        "there is not deteriorating).", json_schema_extra={"source": "SparkPost docs"})
    idle_restart_days: int = Field(
        30, ge=1, le=365, description="Days without traffic to a provider after which its "
        "warm-up starts again at stage 1.", json_schema_extra={"source": "SendGrid"})
    baseline_days: int = Field(
        7, ge=1, le=90, description="Days before a judged day whose deferral and hard-bounce "
        "rates it is compared with: a significant rise (95 % bounds) holds the stage.")


class IpSettings(Section):
    """One egress IP address the MTA can send from."""

    address: str = Field(description="The IPv4 or IPv6 address mail leaves from.")
    helo: str = Field(description="HELO/EHLO name announced from this address; its forward and "
                      "reverse DNS should match.")
    state: IpState = Field(IpState.ACTIVE, description="warming (new, volume capped by the "
                           "warm-up schedule), active, draining (no new mail) or retired (no "
                           "mail at all).")
    warmup_schedule: str | None = Field(
        None, description="Warm-up schedule of this IP while it is warming. Unset: "
        "warmup.ip_schedule.")


class PoolSettings(Section):
    """A named group of egress IPs; shared pools serve tenants by tier."""

    name: str = Field(description="Unique pool name, shown in decisions and on the dashboard.")
    kind: PoolKind = Field(PoolKind.SHARED, description="shared (tenants ride it by tier) or "
                           "dedicated (a group of tenants' own IPs).")
    tiers: tuple[Tier, ...] = Field((), description="Tiers a shared pool serves, among good, "
                                    "new and risky; each tier is served by exactly one pool.")
    ips: tuple[str, ...] = Field(description="Addresses from [[ips]] in this pool; an address "
                                 "belongs to at most one pool.")
    return_path_domain: str | None = Field(
        None, description="VERP return-path domain of this pool's mail, so each pool's "
        "bounces and MAIL FROM reputation are its own; its SPF is checked against the pool's "
        "IPs (poolwarden domains --check) and feedback tokens are accepted there. Unset: "
        "feedback.verp_domain.")


class TenantSettings(Section):
    """A customer whose mail poolwarden routes."""

    name: str = Field(description="Unique tenant name, used in logs, the API and the dashboard.")
    plan: Plan = Field(description="Placement: shared (a shared pool by tier), dedicated (own "
                       "IPs), major-via-shared (major providers via shared, the rest own IPs), "
                       "prove-then-share (own IPs until proven, then the good pool), "
                       "private-routing (only private_domains use own IPs) or auto (chosen "
                       "from the volume advice).")
    domains: tuple[str, ...] = Field((), description="Sending domains of this tenant "
                                     "(5321.MAILFROM and 5322.From); a domain belongs to one "
                                     "tenant.")
    dedicated_ips: tuple[str, ...] = Field(
        (), description="Addresses from [[ips]] only this tenant sends from; required by plans "
        "dedicated, major-via-shared, prove-then-share and private-routing.")
    private_domains: tuple[str, ...] = Field(
        (), description="private-routing only: the tenant's domains whose mail leaves from its "
        "dedicated IPs; the rest rides the shared pool. A subset of domains.")
    sasl_usernames: tuple[str, ...] = Field(
        (), description="SASL login names that identify this tenant (tenant_lookup sasl).")
    client_addresses: tuple[str, ...] = Field(
        (), description="Client IP addresses that identify this tenant when it submits mail "
        "(tenant_lookup client_address).")
    tier: Tier = Field(Tier.NEW, description="Initial tier of a tenant poolwarden has not seen "
                       "before; afterwards the reputation engine and operators move it.")
    warmup_overflow: Literal["shared", "defer"] = Field(
        "shared", description="Mail over a warm-up cap (of the tenant's warming IP or new "
        "domain) or to a paused IP: shared (sent from the shared pool for the tenant's tier, "
        "so it is not delayed) or defer (stays queued until the cap allows it).")
    warmup_domains: tuple[str, ...] = Field(
        (), description="New sending domains of this tenant that warm up (warmup."
        "domain_schedule caps per provider, whatever IP they leave from). A subset of "
        "domains.")
    sending_domains: tuple[SendingDomainSettings, ...] = Field(
        (), description="The roles of the tenant's domains (5322.From, MAIL FROM, DKIM d= "
        "with selectors, tracking host). A domain of domains not listed here is from and "
        "mailfrom.")


class ProviderSettings(Section):
    """A mailbox provider, recognised by recipient domain or MX host suffix."""

    name: str = Field(description="Provider name; a built-in provider (google, microsoft, yahoo, "
                      "apple) of the same name is replaced, any other name is added.")
    domains: tuple[str, ...] = Field((), description="Recipient domains hosted by this "
                                     "provider (subdomains match too).")
    mx_suffixes: tuple[str, ...] = Field((), description="MX host suffixes of this provider, so "
                                         "a company domain hosted there is recognised.")
    major: bool = Field(False, strict=True, description="Whether this is a major provider: "
                        "plan major-via-shared sends mail to it through the shared pool.")


class PoolwardenSettings(Section):
    """The whole configuration file."""

    store: StoreSettings = Field(default_factory=StoreSettings,
                                 description=StoreSettings.__doc__ or "")
    routing: RoutingSettings = Field(default_factory=RoutingSettings,
                                     description=RoutingSettings.__doc__ or "")
    policyd: PolicydSettings = Field(default_factory=PolicydSettings,
                                     description=PolicydSettings.__doc__ or "")
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings,
                                       description=FeedbackSettings.__doc__ or "")
    ingest: IngestSettings = Field(default_factory=IngestSettings,
                                   description=IngestSettings.__doc__ or "")
    traps: TrapSettings = Field(default_factory=TrapSettings,
                                description=TrapSettings.__doc__ or "")
    warmup: WarmupSettings = Field(default_factory=WarmupSettings,
                                   description=WarmupSettings.__doc__ or "")
    reaction: ReactionSettings = Field(default_factory=ReactionSettings,
                                       description=ReactionSettings.__doc__ or "")
    alerts: AlertSettings = Field(default_factory=AlertSettings,
                                  description=AlertSettings.__doc__ or "")
    monitors: MonitorSettings = Field(default_factory=MonitorSettings,
                                      description=MonitorSettings.__doc__ or "")
    dmarc: DmarcSettings = Field(default_factory=DmarcSettings,
                                 description=DmarcSettings.__doc__ or "")
    domains: DomainCheckSettings = Field(default_factory=DomainCheckSettings,
                                         description=DomainCheckSettings.__doc__ or "")
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings,
                                          description=_THRESHOLDS_DOC)
    ips: tuple[IpSettings, ...] = Field((), description=IpSettings.__doc__ or "")
    pools: tuple[PoolSettings, ...] = Field((), description=PoolSettings.__doc__ or "")
    tenants: tuple[TenantSettings, ...] = Field((), description=TenantSettings.__doc__ or "")
    providers: tuple[ProviderSettings, ...] = Field(
        (), description=(ProviderSettings.__doc__ or "") + " Unset: the built-in providers.")


class _Required:
    def __repr__(self) -> str:
        return "(required)"


REQUIRED: Any = _Required()


class Setting(NamedTuple):
    """One scalar (or list-of-scalars) setting, as printed by ``poolwarden config defaults``."""

    name: str  # dotted, list items as ``tenants[].plan``
    type: str
    default: Any  # REQUIRED when the key must be given
    help: str


def iter_settings(model: type[BaseModel] = PoolwardenSettings, prefix: str = "",
                  ) -> Iterator[Setting]:
    """Every leaf setting of ``model``, depth first in declaration order."""
    for name, info in model.model_fields.items():
        dotted = prefix + name
        inner = _section_of(info.annotation)
        if inner is not None:
            item = get_origin(info.annotation) is tuple
            yield from iter_settings(inner, dotted + ("[]." if item else "."))
            continue
        default = REQUIRED if info.is_required() else info.get_default(call_default_factory=True)
        extra = info.json_schema_extra
        source = extra.get("source") if isinstance(extra, dict) else None
        text = (info.description or "") + (f" Source: {source}." if source else "")
        yield Setting(dotted, type_text(info.annotation) + _range_text(info.metadata), default,
                      text)


def _range_text(metadata: list[Any]) -> str:
    low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    if low is None and high is None:
        return ""
    if high is None:
        return f", at least {low}"
    return f", at most {high}" if low is None else f", {low} to {high}"


def _section_of(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is tuple:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean",
            SecretStr: "string (secret)"}


def type_text(annotation: Any) -> str:
    """A short human name for a setting's type: ``list of string``, ``"defer" | "reject"``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(json.dumps(m.value) for m in annotation)
    if origin is tuple:
        item = type_text(args[0])
        return f"list of ({item})" if " | " in item else f"list of {item}"
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " | ".join(type_text(a) for a in rest) + " (optional)"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def format_default(value: Any) -> str:
    """A default as TOML text (``"defer"``, ``["a", "b"]``, ``true``); unset and required aside."""
    if value is REQUIRED:
        return "(required)"
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return json.dumps(value.value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_default(v) for v in value) + "]"
    return repr(value)
