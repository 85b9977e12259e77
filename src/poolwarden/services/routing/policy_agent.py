"""The routing agent's logic: one Postfix policy request in, one action out.

Turns a request into a ``RouteRequest``, asks ``decide()`` on the current
snapshot and maps the Decision to a Postfix action: ``FILTER pw-<ip>:``,
``HOLD``, ``REJECT`` or ``451 4.3.5`` (can't decide). Keeps per-transaction
state keyed by Postfix's ``instance`` so every recipient of one message
shares the first recipient's route, and the others get ``DEFER_IF_PERMIT``
(FILTER is message-wide and the last one wins). Counts every routed recipient
per (IP, provider), (tenant, provider) and warming sending domain in a
``CapCounter`` that ``decide()`` checks today's caps against (the runtime
flushes it to the store in batches and reloads it at start). Records each applied decision
in a bounded in-memory log, bound to the queue id at END-OF-MESSAGE, for a
background flusher. Never raises: any internal error answers the safe defer.
No sockets here; the asyncio server (``policyd``) is a thin loop around it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from poolwarden.core.caps import CapCounter
from poolwarden.core.policy import RouteRequest, decide_for, resolve_tenant
from poolwarden.core.snapshot import Action, Decision, Snapshot, TenantEntry
from poolwarden.core.transports import transport_name
from poolwarden.wire.postfix_policy import PolicyRequest, clean_text

log = logging.getLogger("poolwarden.policyd")

# Transactions are keyed by Postfix's `instance` alone: one message's requests may arrive
# on different policy connections (request_limit, max_ttl, a reconnect after a restart).
# Without the END-OF-MESSAGE check nothing closes them, so the oldest are dropped past
# a cap or an age.
MAX_TRANSACTIONS = 100_000
TRANSACTION_TTL = 3600.0
MAX_LOG = 200_000
DAY = 86400


@dataclass(slots=True)
class Transaction:
    started: float
    action: str  # the action of the first accepted recipient (message-wide)
    decision: Decision
    tenant: str
    version: int  # the snapshot version the first recipient was routed with
    held: bool = False
    release: Decision | None = None  # where held mail goes once released (END-OF-MESSAGE)


class LoggedDecision(NamedTuple):
    at: float
    instance: str
    tenant: str | None
    recipient: str
    action: str
    ip: str | None
    pool: str | None
    rule: str
    snapshot_version: int
    queue_id: str | None = None


@dataclass(slots=True)
class AgentStats:
    by_action: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bad_requests: int = 0


class PolicyAgent:
    """Answers policy requests from whatever snapshot ``snapshot()`` returns right now."""

    def __init__(self, snapshot: Callable[[], Snapshot | None],
                 clock: Callable[[], float] = time.time) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._transactions: dict[str, Transaction] = {}  # by instance, oldest first
        self.decision_log: deque[LoggedDecision] = deque(maxlen=MAX_LOG)
        self.bound: deque[tuple[str, str]] = deque(maxlen=MAX_LOG)  # (instance, queue id)
        self.stats = AgentStats()
        self._logged_causes: set[str] = set()
        self._filters: dict[str, str] = {}  # ip -> its FILTER action, built once
        # today's routed recipients per (ip | domain | tenant, provider): what daily caps are
        # checked against; flushed to the store and reloaded at start by the runtime
        self.counts = CapCounter(int(clock() // DAY))

    # -- entry point ----------------------------------------------------------

    def answer(self, request: PolicyRequest, connection: int = 0) -> str:
        """The action text for one request; never raises."""
        try:
            action = self._answer(request, connection)
        except Exception as exc:  # the fail-safe boundary of the hot path: defer, never guess
            action = self._fail("internal error", exc)
        kind = action.split(" ", 1)[0]
        self.stats.by_action[kind] = self.stats.by_action.get(kind, 0) + 1
        return action

    def _fail(self, cause: str, exc: BaseException | None = None) -> str:
        self.stats.errors[cause] = self.stats.errors.get(cause, 0) + 1
        if cause not in self._logged_causes:  # logged once per cause, counted always
            self._logged_causes.add(cause)
            log.error("deferring: %s%s", cause, f": {exc!r}" if exc else "")
        return f"451 4.3.5 poolwarden: {clean_text(cause, 200)}, try again later"

    def _answer(self, request: PolicyRequest, connection: int) -> str:
        if request.problem is not None:
            self.stats.bad_requests += 1
            return self._fail(f"bad policy request ({request.problem})")
        attrs = request.attrs
        if attrs.get("request") != "smtpd_access_policy":
            self.stats.bad_requests += 1
            return self._fail("bad policy request (request is not smtpd_access_policy)")
        state = attrs.get("protocol_state")
        if state == "RCPT":
            return self._recipient(request, connection)
        if state == "END-OF-MESSAGE":
            return self._end_of_message(request, connection)
        return "DUNNO"

    # -- RCPT -----------------------------------------------------------------

    def _recipient(self, request: PolicyRequest, connection: int) -> str:
        snapshot = self._snapshot()
        if snapshot is None:
            return self._fail("no routing snapshot loaded yet")
        get = request.attrs.get
        route_request = RouteRequest(
            recipient=get("recipient", ""), sender=get("sender") or None,
            sasl_username=get("sasl_username") or None,
            client_address=get("client_address") or None)
        tenant = resolve_tenant(route_request, snapshot)
        if tenant is None:
            who = (route_request.sasl_username or route_request.sender
                   or route_request.client_address or "nobody")
            decision = Decision(snapshot.settings.unknown_tenant, None, None,
                                f"no tenant matches {who}", "unknown_tenant")
            return self._record(request, snapshot, None, decision,
                                self._unknown_action(decision))
        entry = snapshot.tenants[tenant]
        now = self._clock()
        counts = self.counts
        if now // DAY != counts.day:  # a new UTC day: caps start again
            counts.roll(int(now // DAY))
        decision = decide_for(entry, route_request, snapshot, None, counts, now)
        instance = get("instance", "")
        current = self._transactions.get(instance)
        if decision.action is Action.HOLD:
            return self._hold(request, snapshot, entry, route_request, instance, current,
                              decision)
        action = self._action(decision)
        if current is None:
            if decision.action is Action.ROUTE:
                self._open(instance, Transaction(
                    now, action, decision, tenant, snapshot.version))
                self._count(snapshot, decision.ip, tenant, route_request, decision)
            return self._record(request, snapshot, tenant, decision, action)
        if decision.action is Action.ROUTE and not current.held:
            if action == current.action:
                self._count(snapshot, decision.ip, tenant, route_request, decision)
                return self._record(request, snapshot, tenant, decision, action)
            if (decision.pool is not None and decision.pool == current.decision.pool
                    and snapshot.version == current.version
                    and self._room(snapshot, current.decision.ip, decision.provider, now)):
                # same pool in the same snapshot, other IP by hash: keep the message's IP
                self._count(snapshot, current.decision.ip, tenant, route_request, decision)
                return self._record(request, snapshot, tenant, current.decision, current.action)
        if decision.action is not Action.ROUTE:
            return self._record(request, snapshot, tenant, decision, action)
        return self._split(request, snapshot, tenant, decision)

    def _hold(self, request: PolicyRequest, snapshot: Snapshot, entry: TenantEntry,
              route_request: RouteRequest, instance: str, current: Transaction | None,
              decision: Decision) -> str:
        """Suspended: HOLD, and remember the route the held mail takes once released."""
        release = (decide_for(entry.release, route_request, snapshot)
                   if entry.release is not None else None)
        if release is not None and release.action is not Action.ROUTE:
            release = None
        action = "HOLD " + clean_text(decision.reason, 300)
        if current is None:
            self._open(instance, Transaction(
                self._clock(), action, decision, entry.name, snapshot.version, held=True,
                release=release))
        elif (current.held and release is not None and current.release is not None
              and release.pool != current.release.pool):
            return self._split(request, snapshot, entry.name, release)
        return self._record(request, snapshot, entry.name, decision, action)

    def _count(self, snapshot: Snapshot, ip: str | None, tenant: str,
               request: RouteRequest, decision: Decision) -> None:
        """Count one routed recipient against today's caps (per recipient, at the decision
        that routes it, for the IP the message really leaves from)."""
        provider = decision.provider
        if ip is None or provider is None:
            return
        domain = None
        if snapshot.limits.domain_caps and request.sender:
            sender_domain = request.sender.rpartition("@")[2].strip().strip(">").lower()
            if (sender_domain, provider) in snapshot.limits.domain_caps:
                domain = sender_domain
        self.counts.add(ip, tenant, domain, provider)

    def _room(self, snapshot: Snapshot, ip: str | None, provider: str | None,
              now: float) -> bool:
        """Whether ``ip`` may take one more recipient for ``provider`` today."""
        if not snapshot.limited or ip is None or provider is None:
            return True
        cap = snapshot.limits.ip_caps.get((ip, provider))
        live = cap.at(now) if cap is not None else None
        return live is None or self.counts.ip_count(ip, provider) < live.limit

    def _split(self, request: PolicyRequest, snapshot: Snapshot, tenant: str,
               decision: Decision) -> str:
        action = ("DEFER_IF_PERMIT 4.7.1 poolwarden: this recipient leaves from another route; "
                  "send it in a separate transaction")
        return self._record(request, snapshot, tenant, decision, action)

    def _action(self, decision: Decision) -> str:
        if decision.action is Action.ROUTE and decision.ip:
            action = self._filters.get(decision.ip)
            if action is None:
                action = self._filters[decision.ip] = f"FILTER {transport_name(decision.ip)}:"
            return action
        if decision.action is Action.HOLD:
            return "HOLD " + clean_text(decision.reason, 300)
        if decision.action is Action.REJECT:
            return "REJECT 5.7.1 " + clean_text(decision.reason, 300)
        return "451 4.3.5 poolwarden: " + clean_text(decision.reason, 300)

    def _unknown_action(self, decision: Decision) -> str:
        self.stats.errors["unknown tenant"] = self.stats.errors.get("unknown tenant", 0) + 1
        return self._action(decision)

    def _record(self, request: PolicyRequest, snapshot: Snapshot, tenant: str | None,
                decision: Decision, action: str) -> str:
        get = request.attrs.get
        kind = action.partition(" ")[0]
        self.decision_log.append(LoggedDecision(
            self._clock(), get("instance", ""), tenant, get("recipient", ""), kind,
            decision.ip if kind == "FILTER" else None, decision.pool, decision.rule,
            snapshot.version))
        return action

    # -- END-OF-MESSAGE ---------------------------------------------------------

    def _end_of_message(self, request: PolicyRequest, connection: int) -> str:
        instance = request.get("instance")
        current = self._transactions.pop(instance, None) if instance else None
        queue_id = request.get("queue_id")
        if queue_id:
            self.bound.append((instance, queue_id))
        if current is not None and current.held and current.release is not None:
            # HOLD is message-wide; this FILTER gives held mail its route for release (-H)
            return self._action(current.release)
        return "DUNNO"

    def forget_connection(self, connection: int) -> None:
        """A policy connection closed; its transactions may go on over another one."""

    def _open(self, instance: str, transaction: Transaction) -> None:
        transactions = self._transactions
        while transactions:
            oldest = next(iter(transactions.values()))
            if (len(transactions) < MAX_TRANSACTIONS
                    and transaction.started - oldest.started < TRANSACTION_TTL):
                break
            del transactions[next(iter(transactions))]
        transactions[instance] = transaction
