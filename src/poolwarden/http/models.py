"""Response and request models of the REST API: the published OpenAPI schema.

They mirror the read models of ``services.queries.reports`` (the CLI's ``--json``
shows the same fields), so the API, the CLI and the dashboard agree.
Request models forbid unknown fields: a client cannot smuggle ``tier`` or
``tenant`` into a request that does not take them (mass assignment, ASVS 15.3.3).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from poolwarden.core.model import Tier

Name = Field(min_length=1, max_length=255)


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorDetail(Out):
    message: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(description="The request field at fault, when one is.")
    correlation_id: str | None = Field(
        None, description="On 500 and 503: the id of the server log entry with the cause.")


class ErrorOut(Out):
    """The body of every error answer."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in (
        (401, "No valid API token."),
        (403, "The token's role may not call this route."),
        (404, "No such object (or one this token may not see)."),
        (422, "The request is malformed; ``field`` names the culprit."),
        (429, "Too many failed attempts from this address."),
        (500, "Internal error (with a correlation id)."),
        (503, "The store (or Postfix) is unavailable."))}


class Rate(Out):
    value: float = Field(description="Observed rate (count / sample).")
    count: int
    sample: int = Field(description="Sample size the rate is computed on.")
    floor: int = Field(description="Minimum sample before the rate is trusted.")
    low: float = Field(description="Wilson lower bound at the configured confidence.")
    high: float = Field(description="Wilson upper bound at the configured confidence.")
    sufficient: bool = Field(description="Whether sample >= floor.")


class Metrics(Out):
    window_days: int
    active_days: int
    volume: int
    delivered: int
    trap_hits: int
    hard_bounce_rate: Rate
    complaint_rate: Rate
    deferral_rate: Rate


class Advice(Out):
    advised: bool = Field(description="Whether a dedicated IP is advised.")
    label: str
    monthly_volume: int
    daily_volume: float
    per_provider_daily: dict[str, float]
    reasons: list[str]
    thresholds: dict[str, Any]


class Move(Out):
    tenant: str
    before: str
    after: str
    at: float
    rule: str
    reason: str
    actor: str
    source: str
    pinned: bool
    metrics: dict[str, Any] = Field(description="The numbers the move was decided on.")
    thresholds: dict[str, Any] = Field(description="The thresholds they were compared with.")


class TenantRow(Out):
    name: str
    plan: str
    tier: str
    pinned: bool
    pool: str
    volume: int
    window_days: int
    hard_bounce_rate: Rate
    complaint_rate: Rate
    deferral_rate: Rate
    trap_hits: int
    advice: Advice


class ListingOut(Out):
    target: str
    kind: str
    listed: bool
    since: float
    codes: list[str]
    meaning: str
    reason: str
    checked_at: float
    clear_since: float | None
    list: str  # declared last: the name shadows the builtin in the class body


class ListingChangeOut(Out):
    at: float
    target: str
    kind: str
    change: str
    codes: list[str]
    meaning: str
    reason: str
    consequence: str
    list: str  # declared last: the name shadows the builtin in the class body


class Listings(Out):
    """DNS blocklist listings in force and the history of listings and delistings."""

    listed: list[ListingOut]
    history: list[ListingChangeOut]


class TenantDetail(Out):
    name: str
    plan: str
    domains: list[str]
    dedicated_ips: list[str]
    private_domains: list[str]
    tier: str
    since: float
    pinned: bool
    pinned_by: str | None
    pinned_why: str | None
    routes: dict[str, str | None]
    window: Metrics
    proof_window: Metrics
    per_provider: dict[str, Metrics]
    advice: Advice
    moves: list[Move]
    blocklists: Listings | None = None
    reactions: list[dict[str, Any]] = Field(
        default_factory=list, description="Reaction-rule activations on the tenant or its "
        "dedicated IPs, newest first, each with its phase, effect now and trigger lines.")


class IpRow(Out):
    address: str
    helo: str
    state: str
    blocklisted: bool
    pools: list[str]
    dedicated_to: str | None
    volume: int
    hard_bounce_rate: Rate
    complaint_rate: Rate
    trap_hits: int
    listed_on: str = Field("", description="DNS blocklists listing this IP now (comma "
                           "separated); routes skip it when on_listing is drain.")


class Neighbour(Out):
    tenant: str
    volume: int
    hard_bounces: int
    complaints: int
    trap_hits: int
    bounce_share: float
    complaint_share: float
    trap_share: float
    harm: float


class IpDetail(Out):
    address: str
    helo: str
    state: str
    blocklisted: bool
    pools: list[str]
    shared: bool
    window: Metrics
    per_provider: dict[str, Metrics]
    neighbours: list[Neighbour]
    warmup: dict[str, Any] | None = Field(
        None, description="Warm-up progress against its schedule, when the IP warms up.")
    reactions: list[dict[str, Any]] = Field(
        default_factory=list, description="Reaction-rule activations on this IP.")
    blocklists: Listings | None = None


class Pool(Out):
    name: str
    kind: str
    tiers: list[str]
    ips: list[str]
    tenants: list[str] = Field(description="Tenants whose default route uses this pool now.")
    restrictions: list[dict[str, Any]] = Field(
        default_factory=list, description="Active reaction rules on the pool's IPs.")


class Decision(Out):
    at: float
    node: str
    instance: str
    tenant: str | None
    recipient: str
    action: str
    ip: str | None
    pool: str | None
    rule: str
    snapshot_version: int
    queue_id: str | None


class SummaryRow(Out):
    key: str = Field(description="The tenant, IP, provider or day (YYYY-MM-DD) summed over.")
    delivered: int
    hard_bounces: int
    soft_bounces: int
    deferred: int
    complaints: int
    trap_hits: int
    volume: int


class Override(Out):
    tenant: str
    tier: str
    since: float
    pinned: bool
    pinned_by: str | None
    pinned_why: str | None


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=255)
    tier: Tier
    reason: str = Field(min_length=1, max_length=1000, description="Why (recorded).")


class ClearIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


class Held(Out):
    tenant: str
    held_decisions: int = Field(description="HOLD decisions in the recent decision log.")
    in_queue: int | None = Field(description="Messages in Postfix's hold queue attributed "
                                 "to the tenant (postqueue -j); null without Postfix.")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=255)
    dry_run: bool = False


class ReleaseOut(Out):
    tenant: str
    released: int
    queue_ids: list[str]
    dry_run: bool


class AuditEntry(Out):
    id: int | None
    at: float
    actor: str
    source: Literal["api", "cli", "dashboard", "engine"] | str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AlertOut(Out):
    id: int | None
    at: float
    key: str = Field(description="The condition alerted on (one alert per condition until "
                     "it clears or the re-notify interval passes).")
    kind: str = Field(description="tier_move, suspension, bad_neighbour, reaction, "
                      "warmup_stall, ingest_lag, ingest_gap, agent_defer.")
    subject: str
    text: str = Field(description="The explanation, numbers and thresholds included.")
    link: str = Field(description="The dashboard page that explains it.")
    numbers: dict[str, Any]
    tenant: str | None
    ip: str | None
    outcome: dict[str, str] | None = Field(
        description="Per channel: sent, failed, suppressed (null for a tenant token).")


class FindingOut(Out):
    tenant: str | None
    domain: str
    check: str = Field(description="spf, spf-route, dkim, dmarc, alignment, tracking, "
                       "return-path.")
    status: str = Field(description="ok, warning, error or unknown (the DNS did not answer).")
    reason: str
    record: str | None = Field(description="The DNS record text the check read.")
    route: str | None = Field(description="The route (pool or dedicated:TENANT) checked.")
    ip: str | None


class DomainOut(Out):
    tenant: str | None
    domain: str
    roles: list[str] = Field(description="from, mailfrom, dkim, tracking.")
    status: str = Field(description="The worst finding, or 'unchecked'.")
    checks: dict[str, str] = Field(description="The worst status of each check.")
    checked_at: float | None
    findings: list[FindingOut]
    dmarc: dict[str, Any] | None = Field(description="What DMARC aggregate reports say: "
                                         "aligned pass shares on our IPs by route, mail "
                                         "from sources that are not ours, findings.")


class DmarcReportOut(Out):
    id: int | None
    key: str
    status: str = Field(description="stored, rejected or skipped.")
    received_at: float
    source: str
    reason: str
    org_name: str
    report_id: str
    policy_domain: str
    policy_p: str
    begin: int
    end: int
    records: int
    messages: int
    warnings: list[str]
