"""The routing agent: one Postfix policy request in, one action out; it decides nothing.

Protocol in (``wire.postfix_policy.route_request``), the core's decision
(``core.message.route_recipient``: tenant, route, one route per message, the
held mail's release route), action out (``ActionEncoder``: ``FILTER
pw-<ip>:``, ``HOLD``, ``REJECT``, ``DEFER_IF_PERMIT`` for a recipient split
off its message, ``451 4.3.5`` when it cannot decide). What it keeps is the
state the core hands back: each open message's ``MessageRoute`` keyed by
Postfix's ``instance``, and the ``CapCounter`` of today's routed recipients
that the core checks daily caps against (the runtime flushes it to the store
in batches and reloads it at start). Records each applied decision in a
bounded in-memory log, bound to the queue id at END-OF-MESSAGE, for a
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
from poolwarden.core.message import MessageRoute, release_route, route_recipient
from poolwarden.core.snapshot import Decision, Snapshot
from poolwarden.core.transports import transport_name
from poolwarden.wire.postfix_policy import (
    SPLIT_ACTION,
    ActionEncoder,
    PolicyRequest,
    cannot_decide,
    route_request,
)

__all__ = ["AgentStats", "LoggedDecision", "PolicyAgent", "transport_name"]

log = logging.getLogger("poolwarden.policyd")

# Messages are keyed by Postfix's `instance` alone: one message's requests may arrive
# on different policy connections (request_limit, max_ttl, a reconnect after a restart).
# Without the END-OF-MESSAGE check nothing closes them, so the oldest are dropped past
# a cap or an age.
MAX_TRANSACTIONS = 100_000
TRANSACTION_TTL = 3600.0
REROUTE_WAIT = "451 4.7.1 poolwarden: no route for re-queued mail now, try again later"
MAX_SEEN_DOMAINS = 50_000  # between two MX rounds (one a second)
MAX_LOG = 200_000
DAY = 86400
# States where DUNNO routes nothing and lets nothing through unrouted: VRFY and ETRN carry
# no message (Postfix runs the recipient restrictions for VRFY; ETRN only flushes mail
# already queued, with the route it has). END-OF-MESSAGE is answered above: the route
# was set at RCPT and Postfix keeps FILTER in the queue file.
HARMLESS_STATES = frozenset({"VRFY", "ETRN"})
POSTFIX_STATES = frozenset({"CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA",
                            "END-OF-MESSAGE", "VRFY", "ETRN"})


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
        self._transactions: dict[str, MessageRoute] = {}  # by instance, oldest first
        self.decision_log: deque[LoggedDecision] = deque(maxlen=MAX_LOG)
        self.bound: deque[tuple[str, str]] = deque(maxlen=MAX_LOG)  # (instance, queue id)
        self.stats = AgentStats()
        self._logged_causes: set[str] = set()
        self._encode = ActionEncoder().action
        # today's routed recipients per (ip | domain | tenant, provider): what daily caps are
        # checked against; flushed to the store and reloaded at start by the runtime
        self.counts = CapCounter(int(clock() // DAY))
        # recipient domains seen since monitord last took them: its MX rollup resolves
        # the unknown ones off this path and the next snapshot knows their provider
        self.recipient_domains: set[str] = set()

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
        return cannot_decide(cause)

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
            return self._recipient(request)
        if state == "END-OF-MESSAGE":
            return self._end_of_message(request)
        if state in HARMLESS_STATES:
            return "DUNNO"
        # CONNECT, HELO, EHLO, MAIL, DATA, none or an unknown state: the check sits under a
        # restriction list where no recipient is known, so nothing can be routed; DUNNO
        # there would let the message go on without a route (sent from the default
        # transport under a hand-written main.cf). Defer, so the misplacement shows.
        self.stats.bad_requests += 1
        # named only when it is one of Postfix's: peer text would grow the cause table
        shown = state if state in POSTFIX_STATES else ("none" if not state else "unknown")
        return self._fail(f"policy check asked at protocol state {shown}, not RCPT")

    # -- RCPT -----------------------------------------------------------------

    def _recipient(self, request: PolicyRequest) -> str:
        snapshot = self._snapshot()
        if snapshot is None:
            return self._fail("no routing snapshot loaded yet")
        now = self._clock()
        counts = self.counts
        if now // DAY != counts.day:  # a new UTC day: caps start again
            counts.roll(int(now // DAY))
        instance = request.attrs.get("instance", "")
        current = self._transactions.get(instance)
        # unpacked at once: cheaper on the hot path than seven attribute reads
        decision, tenant, split, message, count_ip, provider, domain = route_recipient(
            route_request(request), snapshot, now, current, counts)
        if split:
            action = SPLIT_ACTION
        else:
            action = self._encode(decision)
            if action[0] in "R5" and request.attrs.get("policy_context") == "reroute":
                # mail moved off an IP is Postfix's already: a refusal here would bounce
                # it, so it waits instead (the tenant's standing may change back)
                action = REROUTE_WAIT
            if tenant is None:  # counted apart: unknown senders alert on their own
                self.stats.errors["unknown tenant"] = (
                    self.stats.errors.get("unknown tenant", 0) + 1)
        if message is not current and message is not None:
            self._open(instance, message)
        if count_ip is not None and provider is not None:
            counts.add(count_ip, tenant, domain, provider)
        seen = self.recipient_domains
        if len(seen) < MAX_SEEN_DOMAINS:
            recipient = request.attrs.get("recipient", "")
            seen.add(recipient[recipient.rfind("@") + 1:])
        return self._record(request, snapshot, tenant, decision, action)

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

    def _end_of_message(self, request: PolicyRequest) -> str:
        instance = request.get("instance")
        current = self._transactions.pop(instance, None) if instance else None
        queue_id = request.get("queue_id")
        if queue_id:
            self.bound.append((instance, queue_id))
        release = release_route(current)
        if release is not None:
            # HOLD is message-wide; this FILTER gives held mail its route for release (-H)
            return self._encode(release)
        return "DUNNO"

    def forget_connection(self, connection: int) -> None:
        """A policy connection closed; its transactions may go on over another one."""

    def _open(self, instance: str, message: MessageRoute) -> None:
        transactions = self._transactions
        while transactions:
            oldest = next(iter(transactions.values()))
            if (len(transactions) < MAX_TRANSACTIONS
                    and message.started - oldest.started < TRANSACTION_TTL):
                break
            del transactions[next(iter(transactions))]
        transactions[instance] = message
