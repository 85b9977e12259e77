"""Alerts to operators: find the conditions worth a human's attention, send each once.

Conditions (each with the numbers behind it and a link to the dashboard page
that explains it):

* ``tier_move`` / ``suspension``: every tier move the store records (suspended or
  off the platform is a suspension), with its rule, metrics and thresholds;
* ``bad_neighbour``: a tenant whose harm share of a shared IP's bad signals is
  over ``neighbour_share`` (``neighbours`` of the reputation engine handed in as
  ``engine``; without one, not checked);
* ``reaction``: a reaction rule that fired (the store's reaction activations);
* ``warmup_stall``: a warm-up stage held for ``warmup_stall_days`` days;
* ``ingest_lag`` / ``ingest_gap``: the log ingester behind by bytes or seconds, or
  bytes of the log known to be lost (``IngestMetrics``);
* ``agent_defer``: the routing agent deferring mail because it could not decide
  (no snapshot, internal error), from its error counters;
* ``policy_connections``: the policy server reached a connection limit and shed
  (or refused) connections since the last check: someone holds connections that
  are not Postfix's, or Postfix has more smtpd processes than the limits allow;
* ``ingest_missing_log``: a followed log file that does not exist (``serve
  --wait-for-log``).
* ``blocklist_listed`` / ``blocklist_delisted`` / ``pool_all_listed``: DNS blocklist
  listings with the bad-neighbour ranking, and pools whose every IP is listed
  (``listing_alerts``).
* ``auth_route``: a route poolwarden may give a tenant (its dedicated IPs, any shared pool
  a tier move, overflow, graduation or reroute leads to) whose IPs the SPF of one of the
  tenant's MAIL FROM domains does not authorize, from the stored domain findings
  (``poolwarden domains --check``): raised before a move there breaks authentication.

Deduplicated: a condition has a key; a standing condition (a lag, a bad
neighbour) alerts once, then again only after ``renotify_interval`` or once it
has cleared and come back; one-off events (a move) alert once. The keys sent
within the re-notify interval are reloaded from the store at start, so a
restart does not repeat them. Rate-limited per channel by a token bucket: an
alert over the limit is recorded as suppressed and counted. Every alert is
recorded in the store (``alerts`` table) with its outcome per channel.

``Alerter.detect`` does the store work (call it off the event loop);
``Alerter.poll`` runs one round given a way to run that work on a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from poolwarden.config.load import LoadedConfig
from poolwarden.config.schema import AlertSettings
from poolwarden.core.errors import PoolwardenError
from poolwarden.core.model import PoolKind, Tier
from poolwarden.core.neighbours import NeighbourShare
from poolwarden.core.reaction import Activation
from poolwarden.core.tiers import TierMove
from poolwarden.ports import AlertRow, AlertSource
from poolwarden.services.alerts.channels import (
    Alert,
    Channel,
    EmailChannel,
    TokenBucket,
    WebhookChannel,
)
from poolwarden.services.alerts.listing_alerts import ListingAlerts
from poolwarden.services.queries.metrics import (
    AgentCounts,
    ConnectionCounts,
    IngestCounts,
    IngestLag,
    lack_of_decision,
)

log = logging.getLogger("poolwarden.alerts")

T = TypeVar("T")
MOVE_KINDS = ("tier_move", "suspension")
MAX_MOVES_PER_POLL = 500
NEIGHBOUR_EVERY = 300.0  # seconds between two bad-neighbour rankings


class NeighbourRanker(Protocol):
    """Who harms a shared IP (``services.reputation.engine.Engine``)."""

    def neighbours(self, ip: str, now: float) -> list[NeighbourShare]:
        ...


def _none() -> None:
    return None


def channels_from(settings: AlertSettings) -> list[Channel]:
    """The channels ``[alerts]`` configures (none: alerts are only recorded)."""
    channels: list[Channel] = []
    if settings.webhook_urls:
        channels.append(WebhookChannel(settings.webhook_urls, timeout=settings.webhook_timeout,
                                       retries=settings.retries, backoff=settings.retry_backoff))
    if settings.smtp_host and settings.mail_to:
        channels.append(EmailChannel(settings.smtp_host, settings.smtp_port,
                                     sender=settings.mail_from, recipients=settings.mail_to,
                                     timeout=settings.smtp_timeout,
                                     starttls=settings.smtp_starttls, retries=settings.retries,
                                     backoff=settings.retry_backoff))
    return channels


class Deduper:
    """Which alerts to send now: new conditions, and old ones past the re-notify interval."""

    def __init__(self, renotify: float) -> None:
        self.renotify = renotify
        self.sent: dict[str, tuple[float, bool]] = {}  # key -> (last sent, standing)

    def remember(self, key: str, at: float, standing: bool) -> None:
        self.sent[key] = (at, standing)

    def select(self, alerts: Sequence[Alert], now: float) -> list[Alert]:
        present = {a.key for a in alerts}
        for key, (at, standing) in list(self.sent.items()):
            # a standing condition that is gone has cleared: it alerts again if it returns;
            # a one-off event is forgotten once it can no longer repeat
            if (standing and key not in present) or now - at >= self.renotify:
                del self.sent[key]
        fresh = []
        for alert in alerts:
            if alert.key not in self.sent:
                self.sent[alert.key] = (now, alert.standing)
                fresh.append(alert)
        return fresh


@dataclass(slots=True)
class AlertStats:
    """Deliveries by (kind, channel, outcome), read by the metrics collector."""

    outcomes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    polls: int = 0
    errors: int = 0

    def count(self, kind: str, channel: str, outcome: str) -> None:
        key = (kind, channel, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


class Alerter:
    """Finds alert conditions, deduplicates, rate-limits, sends and records them."""

    def __init__(self, config: Callable[[], LoadedConfig], store: AlertSource, *,
                 channels: Sequence[Channel] | None = None,
                 clock: Callable[[], float] = time.time,
                 agent: Callable[[], AgentCounts | None] = _none,
                 ingest: Callable[[], IngestCounts | None] = _none,
                 ingest_lag: IngestLag | None = None,
                 connections: Callable[[], ConnectionCounts | None] = _none,
                 missing_logs: Callable[[], Sequence[Any]] = list,
                 engine: Callable[[LoadedConfig, float], NeighbourRanker] | None = None,
                 warmup: Callable[[], Sequence[Any]] | None = None) -> None:
        self.config = config
        self.store = store
        settings = config().settings.alerts
        self.channels = list(channels) if channels is not None else channels_from(settings)
        self.clock = clock
        self.agent = agent
        self.ingest = ingest
        self.connections = connections
        self.missing_logs = missing_logs
        self._shed_seen: int | None = None
        self.ingest_lag = ingest_lag or IngestLag()
        self._engine = engine
        self._warmup = warmup  # the warm-up states (``core.warmup.WarmupState``), if any
        now = clock()
        self.buckets = {c.name: TokenBucket(settings.rate_burst, settings.rate_per_hour / 3600,
                                            now) for c in self.channels}
        self.dedup = Deduper(settings.renotify_interval)
        # channels follow configuration reloads unless they were handed in
        self._own_channels = channels is None
        self._settings_seen = settings
        self.stats = AlertStats()
        self._started = now
        self._move_mark: float | None = None  # time of the newest move already alerted
        self._defers_seen: int | None = None
        self._gaps_seen: tuple[int, int] | None = None  # (gaps, gap bytes) last seen
        self._activation_mark: int | None = None  # id of the newest activation seen
        self._neighbour_cache: tuple[float, list[Alert]] = (float("-inf"), [])
        self._listings = ListingAlerts(now)
        self._loaded = False

    @property
    def settings(self) -> AlertSettings:
        return self.config().settings.alerts

    # -- links ----------------------------------------------------------------------

    def _link(self, kind: str = "", name: str = "") -> str:
        base = self.settings.base_url
        return f"{base}/{kind}/{quote(name, safe='')}" if kind else f"{base}/"

    # -- detection (store work: off the event loop) ----------------------------------

    def detect(self, now: float) -> list[Alert]:
        """Every alert condition true now (before deduplication)."""
        if not self._loaded:
            self._load_sent(now)
        alerts: list[Alert] = []
        detectors: tuple[tuple[str, Callable[[float], list[Alert]]], ...] = (
            ("tier moves", lambda _: self._moves()), ("reaction rules", self._reactions),
            ("bad neighbours", self._neighbours), ("warm-up", self._warmup_stalls),
            ("ingestion", self._ingest), ("routing agent", self._agent),
            ("policy connections", self._connections), ("followed logs", self._missing),
            ("blocklists", self._blocklists),
            ("authentication", self._auth))
        for name, detector in detectors:
            try:  # one failing source (a store error) must not silence the others
                alerts += detector(now)
            except PoolwardenError as exc:
                self.stats.errors += 1
                log.error("alerts: %s not checked: %s", name, exc)
        return alerts

    def _load_sent(self, now: float) -> None:
        """Keys alerted within the re-notify interval (before a restart) stay quiet."""
        self._loaded = True
        for row in reversed(self.store.alerts(since=now - self.settings.renotify_interval,
                                              limit=10_000)):
            self.dedup.remember(row.key, row.at, bool(row.numbers.get("standing")))
            self._listings.remember(row.kind, row.numbers)
            if row.kind in MOVE_KINDS:
                at = row.numbers.get("move_at")
                if isinstance(at, int | float) and (self._move_mark is None
                                                    or at > self._move_mark):
                    self._move_mark = float(at)

    def _moves(self) -> list[Alert]:
        mark = self._move_mark if self._move_mark is not None else self._started
        moves = [m for m in self.store.moves(limit=MAX_MOVES_PER_POLL) if m.at > mark]
        if moves:
            self._move_mark = max(m.at for m in moves)
        return [self._move_alert(m) for m in sorted(moves, key=lambda m: m.at)]

    def _move_alert(self, move: TierMove) -> Alert:
        suspension = move.after in (Tier.SUSPENDED, Tier.OFF_PLATFORM)
        kind = "suspension" if suspension else "tier_move"
        who = "automatically" if move.automatic else f"by {move.actor} ({move.source})"
        text = (f"Tenant {move.tenant} moved from {move.before.value} to {move.after.value} "
                f"{who}, rule {move.rule}: {move.reason}")
        numbers: dict[str, Any] = {
            "move_at": move.at, "before": move.before.value, "after": move.after.value,
            "rule": move.rule, "actor": move.actor, "metrics": move.metrics,
            "thresholds": move.thresholds}
        return Alert(key=f"{kind}:{move.tenant}:{move.at!r}", kind=kind,
                     subject=f"{move.tenant}: {move.before.value} -> {move.after.value} "
                     f"({move.rule})", text=text, link=self._link("tenants", move.tenant),
                     at=move.at, numbers=numbers, tenant=move.tenant)

    def _blocklists(self, now: float) -> list[Alert]:
        return self._listings.detect(self.store, self.config(), now, self._engine,
                                     self._link)

    def _neighbours(self, now: float) -> list[Alert]:
        # ranking needs the day counters of every tenant (an Engine): not every poll; in
        # between, the last ranking stands (an unchecked condition has not cleared)
        checked, found = self._neighbour_cache
        if now - checked < NEIGHBOUR_EVERY:
            return found
        found = self._rank_neighbours(now)
        self._neighbour_cache = (now, found)
        return found

    def _rank_neighbours(self, now: float) -> list[Alert]:
        config = self.config()
        settings = config.settings.alerts
        shared = [ip for pool in config.inventory.pools if pool.kind is PoolKind.SHARED
                  for ip in pool.ips]
        if not shared or self._engine is None:
            return []
        engine = self._engine(config, now)
        alerts = []
        for ip in shared:
            ranking = engine.neighbours(ip, now)
            signals = sum(r.hard_bounces + r.complaints + r.trap_hits for r in ranking)
            if signals < settings.neighbour_min_signals or len(ranking) < 2:
                continue  # too little evidence, or nobody else on the IP to harm
            for row in ranking:
                if row.harm <= settings.neighbour_share:
                    continue
                numbers = {**row.as_dict(), "ip_signals": signals, "tenants_on_ip": len(ranking),
                           "threshold": settings.neighbour_share,
                           "min_signals": settings.neighbour_min_signals, "standing": True}
                alerts.append(Alert(
                    key=f"bad_neighbour:{ip}:{row.tenant}", kind="bad_neighbour",
                    subject=f"{row.tenant} is a bad neighbour on {ip}",
                    text=(f"Tenant {row.tenant} caused {row.harm:.0%} of the harm on shared IP "
                          f"{ip} (threshold {settings.neighbour_share:.0%}): "
                          f"{row.bounce_share:.0%} of its {signals} bad signals' hard bounces, "
                          f"{row.complaint_share:.0%} of complaints, {row.trap_share:.0%} of "
                          f"trap hits, among {len(ranking)} tenants."),
                    link=self._link("ips", ip), at=now, numbers=numbers, tenant=row.tenant,
                    ip=ip, standing=True))
        return alerts

    def _reactions(self, now: float) -> list[Alert]:
        """Reaction rules that fired since the last poll (the reaction activations table)."""
        fetch = self.store.reaction_activations
        if self._activation_mark is None:  # at start: the recent ones (dedup knows the sent)
            found = fetch(since=now - self.settings.renotify_interval, limit=1000)
        else:
            found = fetch(after_id=self._activation_mark, limit=1000)
        ids = [a.id for a in found if a.id is not None]
        self._activation_mark = max([*ids, self._activation_mark or 0])
        return [self._reaction_alert(a) for a in sorted(found, key=lambda a: a.id or 0)]

    def _reaction_alert(self, a: Activation) -> Alert:
        scope = a.scope.value
        action = a.action.value
        subject = a.ip if scope == "ip" else a.tenant
        link = (self._link("ips", a.ip) if scope == "ip" and a.ip
                else self._link("tenants", a.tenant) if a.tenant else self._link())
        numbers: dict[str, Any] = {
            "rule": a.rule, "action": action, "scope": scope, "provider": a.provider,
            "ip": a.ip, "tenant": a.tenant, "matches": a.matches, "threshold": a.threshold,
            "period_seconds": a.period, "started_at": a.started_at, "until": a.until,
            "cap_factor": a.cap_factor, "pool": a.pool, "lines": list(a.lines[:5])}
        return Alert(
            key=f"reaction:{a.key}", kind="reaction",
            subject=f"rule {a.rule} fired: {action} {a.provider} x {subject}",
            text=(f"Reaction rule {a.rule} fired for {a.provider} on {scope} {subject}: "
                  f"{a.matches} matching replies within {a.period:.0f} s (trigger "
                  f"{a.threshold}); action {action} until {a.until:.0f}. {a.why}").strip(),
            link=link, at=a.started_at, numbers=numbers, tenant=a.tenant, ip=a.ip)

    def _warmup_stalls(self, now: float) -> list[Alert]:
        """Warm-up stages held (not delivered, or reputation deteriorating) for days."""
        if self._warmup is None:
            return []
        today = int(now // 86400)
        limit = self.settings.warmup_stall_days
        alerts = []
        for state in self._warmup():
            held_days = today - state.stage_day
            if held_days < limit or not state.held:
                continue
            where = f"{state.scope} {state.scope_id}"
            link = (self._link("ips", state.scope_id) if state.scope == "ip"
                    else self._link())
            alerts.append(Alert(
                key=f"warmup_stall:{state.scope}:{state.scope_id}:{state.provider}:"
                    f"{state.stage}", kind="warmup_stall",
                subject=f"warm-up of {where} stalled at stage {state.stage + 1} "
                        f"({state.provider})",
                text=(f"The warm-up of {where} at {state.provider} has held stage "
                      f"{state.stage + 1} of '{state.schedule}' for {held_days} days "
                      f"(alert after {limit}): {state.why}"),
                link=link, at=now, standing=True,
                ip=state.scope_id if state.scope == "ip" else None,
                numbers={"stage": state.stage + 1, "days_at_stage": held_days,
                         "threshold_days": limit, "schedule": state.schedule,
                         "provider": state.provider, "standing": True}))
        return alerts


    def _auth(self, now: float) -> list[Alert]:
        """Routes whose IPs a tenant domain's SPF does not authorize."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        records: dict[tuple[str, str, str], str] = {}
        for finding, _at in self.store.auth_findings():
            if (finding.check != "spf-route" or finding.status != "error"
                    or finding.tenant is None or finding.route is None):
                continue
            key = (finding.tenant, finding.domain, finding.route)
            groups.setdefault(key, []).append(finding.ip or "")
            records[key] = finding.record or ""
        guarded = self.config().settings.routing.skip_spf_unauthorized
        alerts = []
        for (tenant, domain, route), ips in sorted(groups.items()):
            action = ("routing skips those IPs for its mail (routing.skip_spf_unauthorized), "
                      "so such mail waits instead" if guarded else
                      "turn on routing.skip_spf_unauthorized, or add them to the record")
            alerts.append(Alert(
                key=f"auth_route:{tenant}:{domain}:{route}", kind="auth_route",
                subject=f"SPF of {domain} does not cover route {route} of {tenant}",
                text=(f"The SPF record of {domain} ({records[(tenant, domain, route)]}) does "
                      f"not authorize {', '.join(sorted(ips))} of route {route}: a tier move, "
                      "warm-up overflow, graduation or reroute there would fail SPF (and "
                      f"DMARC, unless DKIM aligns); {action}."),
                link=self._link("tenants", tenant), at=now, standing=True, tenant=tenant,
                numbers={"domain": domain, "route": route, "ips": sorted(ips),
                         "skip_spf_unauthorized": guarded, "standing": True}))
        return alerts

    def _ingest(self, now: float) -> list[Alert]:
        metrics = self.ingest()
        if metrics is None:
            return []
        settings = self.settings
        alerts = []
        lag_seconds = self.ingest_lag.seconds(metrics.lag_bytes, now)
        if (metrics.lag_bytes >= settings.ingest_lag_bytes
                or lag_seconds >= settings.ingest_lag_seconds):
            alerts.append(Alert(
                key="ingest_lag", kind="ingest_lag", subject="log ingestion is behind",
                text=(f"The log ingester is {metrics.lag_bytes} bytes behind Postfix's log "
                      f"(threshold {settings.ingest_lag_bytes}) and has been behind for "
                      f"{lag_seconds:.0f} s (threshold {settings.ingest_lag_seconds:.0f} s): "
                      f"tier moves lag the mail."),
                link=self._link(), at=now, standing=True,
                numbers={"lag_bytes": metrics.lag_bytes, "lag_seconds": round(lag_seconds, 1),
                         "threshold_bytes": settings.ingest_lag_bytes,
                         "threshold_seconds": settings.ingest_lag_seconds, "standing": True}))
        gaps = (metrics.gaps, metrics.gap_bytes)
        seen, self._gaps_seen = self._gaps_seen, gaps
        if seen is not None and gaps[0] > seen[0]:
            new_gaps, lost = gaps[0] - seen[0], gaps[1] - seen[1]
            alerts.append(Alert(
                key=f"ingest_gap:{gaps[0]}", kind="ingest_gap",
                subject=f"{new_gaps} gap(s) in the Postfix log",
                text=(f"The log ingester found {new_gaps} unreadable range(s) of the Postfix "
                      f"log ({lost} bytes lost at least; {gaps[0]} gaps in all): outcomes "
                      f"in them are not counted."),
                link=self._link(), at=now,
                numbers={"new_gaps": new_gaps, "bytes_lost": lost, "gaps_total": gaps[0],
                         "gap_bytes_total": gaps[1], "gap_lines_total": metrics.gap_lines}))
        return alerts

    def _agent(self, now: float) -> list[Alert]:
        stats = self.agent()
        if stats is None:
            return []
        errors = dict(stats.errors)  # a copy: the agent counts on another thread
        total = lack_of_decision(errors)
        seen, self._defers_seen = self._defers_seen, total
        if seen is None or total <= seen:
            return []
        causes = {cause: n for cause, n in errors.items() if lack_of_decision({cause: n})}
        return [Alert(
            key="agent_defer", kind="agent_defer",
            subject=f"routing agent deferred {total - seen} request(s): no decision",
            text=(f"The routing agent answered 451 (try again later) to {total - seen} "
                  f"request(s) since the last check because it could not decide; causes so "
                  f"far: " + ", ".join(f"{c} ({n})" for c, n in sorted(causes.items())) + "."),
            link=self._link(), at=now, standing=True,
            numbers={"deferred": total - seen, "deferred_total": total, "causes": causes,
                     "standing": True})]

    def _missing(self, now: float) -> list[Alert]:
        missing = [str(p) for p in self.missing_logs()]
        if not missing:
            return []
        return [Alert(
            key="ingest_missing_log", kind="ingest_missing_log",
            subject=f"{len(missing)} followed log(s) do not exist",
            text=("poolwarden serve waits for " + ", ".join(missing) + ": nothing is "
                  "ingested from them, so reputation runs on no data from them."),
            link=self._link(), at=now, standing=True,
            numbers={"missing": missing, "standing": True})]

    def _connections(self, now: float) -> list[Alert]:
        server = self.connections()
        if server is None:
            return []
        shed = dict(server.shed)
        limits = {r: n for r, n in shed.items() if r in ("peer_limit", "connection_limit")}
        total = sum(limits.values())
        seen, self._shed_seen = self._shed_seen, total
        if total <= (seen or 0):
            return []
        fresh, open_now = total - (seen or 0), server.connection_count
        return [Alert(
            key="policy_connections", kind="policy_connections",
            subject=f"routing agent at its connection limit: {fresh} connection(s) shed",
            text=(f"The policy server reached a connection limit and closed {fresh} "
                  f"connection(s) since the last check to admit new ones ({open_now} open, "
                  f"limit {server.max_connections}); by reason: "
                  + ", ".join(f"{r} ({n})" for r, n in sorted(limits.items())) + ". Postfix "
                  "keeps being served, but some local process may be holding connections "
                  "that are not Postfix's, or Postfix runs more smtpd processes than "
                  "policyd.max_connections_per_peer."),
            link=self._link(), at=now, standing=True,
            numbers={"shed": fresh, "shed_total": total, "by_reason": limits,
                     "open": open_now, "limit": server.max_connections,
                     "standing": True})]

    # -- delivery -----------------------------------------------------------------

    async def deliver(self, alerts: Sequence[Alert]) -> list[AlertRow]:
        """Send each alert on every channel with a token left; the rows to record."""
        rows = []
        for alert in alerts:
            outcome: dict[str, str] = {}
            sends: list[tuple[str, Awaitable[bool]]] = []
            for channel in self.channels:
                if self.buckets[channel.name].take(self.clock()):
                    sends.append((channel.name, channel.send(alert)))
                else:
                    outcome[channel.name] = "suppressed"
            results = await asyncio.gather(*(send for _, send in sends))
            for (name, _), ok in zip(sends, results, strict=True):
                outcome[name] = "sent" if ok else "failed"
            for name, result in outcome.items():
                self.stats.count(alert.kind, name, result)
            if not self.channels:
                self.stats.count(alert.kind, "none", "recorded")
            rows.append(AlertRow(at=alert.at, key=alert.key, kind=alert.kind,
                                 subject=alert.subject, text=alert.text, link=alert.link,
                                 numbers=alert.numbers, tenant=alert.tenant, ip=alert.ip,
                                 outcome=outcome))
        return rows

    def record(self, rows: Sequence[AlertRow]) -> None:
        for row in rows:
            self.store.add_alert(row)

    async def poll(self, in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]
                   | None = None) -> list[AlertRow]:
        """One round: detect (on a thread), send, record (on a thread); never raises."""
        run = in_thread or _to_thread
        self.stats.polls += 1
        try:
            await self._follow_reload()
            now = self.clock()
            found: list[Alert] = await run(lambda: self.detect(now))
            fresh = self.dedup.select(found, now)
            rows = await self.deliver(fresh)
            if rows:
                await run(lambda: self.record(rows))
                for row in rows:
                    log.warning("alert %s: %s %s", row.kind, row.subject, row.outcome or "")
            return rows
        except PoolwardenError as exc:
            self.stats.errors += 1
            log.error("alerts: %s", exc)
        except Exception:  # a bug in a detector must not stop the alert loop for good
            self.stats.errors += 1
            log.exception("alerts: unexpected error")
        return []

    async def _follow_reload(self) -> None:
        """After a SIGHUP reload with new [alerts] settings: new channels and limits (the
        dedup memory stays, so a reload does not repeat alerts)."""
        settings = self.settings
        if settings is self._settings_seen:
            return
        self._settings_seen = settings
        self.dedup.renotify = settings.renotify_interval
        if not self._own_channels:
            return
        await self.aclose()
        self.channels = channels_from(settings)
        now = self.clock()
        self.buckets = {c.name: TokenBucket(settings.rate_burst,
                                            settings.rate_per_hour / 3600, now)
                        for c in self.channels}

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.aclose()


async def _to_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)
