"""Moving mail Postfix already queued off an egress IP: the configuration and the queue work.

Mail queued with ``FILTER pw-<ip>:`` keeps that route in its queue file and retries from
that IP, even after the IP is drained, listed or paused. ``postsuper -r`` drops the route,
but the message then never meets the policy check again. What works (proven on Postfix
3.7, ``shared/postfix-recipe.md`` §9): while moving, ``pickup`` carries
``content_filter = pw-reroute:``; ``postsuper -r`` sends the selected messages through
pickup, the ``pw-reroute`` pipe (``adapters.reroute_pipe``, one recipient per delivery)
submits each recipient to a loopback smtpd (127.0.0.1:10026) whose restrictions ask the
routing agent again (``policy_context=reroute``), and the mail leaves by the route the
policy gives now, or waits.

``reroute_main_cf`` / ``reroute_master_cf`` are the text to add; ``QueueMover.sync(ips)``
makes the queue agree with the set of IPs nothing may leave from: ``defer_transports``
lists exactly their transports (so nothing is in flight from them while moving), deferred
messages routed to them are re-queued through pickup, and pickup's filter is removed again
once the maildrop is empty. Every step is idempotent, so a run interrupted anywhere
(poolwarden killed) is completed by the next one; ``postsuper -r`` names the deferred queue
only, never the active one (a message being delivered is never copied).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from poolwarden.adapters.postqueue import PostfixToolError, run_tool
from poolwarden.core.transports import transport_name

REROUTE_SERVICE = "pw-reroute"
REROUTE_PORT = 10026
PICKUP_FILTER = f"{REROUTE_SERVICE}:reroute"
_FILTER_RECORD = re.compile(r"(?m)^content_filter:\s*([^:\s]+):")
_LOG_IDENT = re.compile(r"(?m)^named_attribute: log_ident=(\S+)")
STRANDED = "(stranded)"
RELOAD_SETTLE = 1.0  # seconds for the daemons of the old configuration to exit
RESCAN_AFTER_RELOAD = 120.0  # seconds after a reload during which qmgr is asked to rescan


def reroute_main_cf(policy_endpoint: str, *, timeout: str = "2s") -> str:
    """main.cf additions: one recipient per reroute delivery, the reroute policy check."""
    return "\n".join([
        "# --- poolwarden: moving queued mail off an IP (generated) ---",
        f"{REROUTE_SERVICE.replace('-', '_')}_destination_recipient_limit = 1",
        "pw_policy_reroute = check_policy_service { " + policy_endpoint
        + f", timeout={timeout}, {{ default_action = 451 4.3.5 poolwarden unavailable }}, "
        "policy_context=reroute }",
    ]) + "\n"


def reroute_master_cf(helper: list[str], done_dir: str, *, user: str = "nobody",
                      port: int = REROUTE_PORT) -> str:
    """master.cf additions: the pipe to the helper and the loopback smtpd it submits to."""
    argv = " ".join(helper)
    return f"""\
# --- poolwarden: moving queued mail off an IP (generated) ---
{REROUTE_SERVICE} unix - n n - - pipe
  flags=q user={user} argv={argv} --done {done_dir} --port {port}
  --sender=${{sender}} --sasl-username=${{sasl_username}} --client-address=${{client_address}}
  --client-helo=${{client_helo}} --queue-id=${{queue_id}} --recipient=${{recipient}}
127.0.0.1:{port} inet n - n - - smtpd
  -o content_filter=
  -o receive_override_options=no_address_mappings,no_header_body_checks,no_milters
  -o smtpd_authorized_xclient_hosts=127.0.0.1
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=$pw_policy_reroute
  -o smtpd_data_restrictions=
  -o smtpd_end_of_data_restrictions=$pw_policy_reroute
"""


@dataclass(slots=True)
class MoveResult:
    moved: list[str] = field(default_factory=list)  # queue ids re-queued this time
    waiting: int = 0  # messages still in the maildrop
    deferred_transports: tuple[str, ...] = ()


Tool = Callable[..., str]


@dataclass(slots=True)
class QueueMover:
    """Moves deferred mail off IPs, on the Postfix instance in ``config_dir``."""

    config_dir: str | Path | None
    tool: Tool = run_tool  # (name, config_dir, *args, stdin=...) -> stdout
    settle_timeout: float = 30.0
    # deferred messages already read with postcat and found routed elsewhere
    _elsewhere: dict[str, str] = field(default_factory=dict)
    _reloaded_once: bool = False
    _reloaded_at: float = float("-inf")

    def _run(self, name: str, *args: str, stdin: str | None = None) -> str:
        return self.tool(name, self.config_dir, *args, stdin=stdin)

    def sync(self, ips: Iterable[str]) -> MoveResult:
        """Make Postfix's queue agree: nothing queued leaves from ``ips`` any more.

        Reloads are few on purpose: a reload while a delivery is in flight leaves that
        queue file locked for the new qmgr ("skipped, still being delivered") until the
        next scan. So the defer list and pickup's filter change together, with one reload,
        when an IP joins the set; the filter stays while any IP is in it; and every run
        ends by asking qmgr to scan the incoming queue again."""
        transports = sorted({transport_name(ip) for ip in ips})
        result = MoveResult(deferred_transports=tuple(transports))
        if transports and not self._run("postconf", "-M", f"{REROUTE_SERVICE}/unix").strip():
            raise PostfixToolError(f"master.cf has no {REROUTE_SERVICE} service: add what "
                                   "poolwarden postfix config --reroute prints")
        changed = self._set_defer_transports(transports)
        to_move = self._routed_to(set(transports))
        if to_move:
            changed |= self._set_pickup_filter(True)
            # once per mover even when master.cf already has the filter: a run killed
            # between postconf and reload left a pickup running without it
            changed |= not self._reloaded_once
        if changed:
            self._reload()
        if to_move:
            self._run("postsuper", "-r", "-", "deferred", stdin="".join(q + "\n"
                                                                        for q in to_move))
            self._run("postkick", "public", "pickup", "W")
            result.moved = to_move
        result.waiting = self._wait_maildrop()
        if not transports and not result.waiting and self._set_pickup_filter(False):
            self._reload()  # nothing listed any more (also after an interrupted run)
        if transports or time.monotonic() - self._reloaded_at < RESCAN_AFTER_RELOAD:
            self._run("postkick", "public", "qmgr", "I")
        return result

    def _set_defer_transports(self, ours: list[str]) -> bool:
        current = self._run("postconf", "-h", "defer_transports").split()
        current = [t.strip(",") for t in current if t.strip(",")]
        others = [t for t in current if not t.startswith("pw-")]
        wanted = others + ours
        if sorted(wanted) == sorted(current):
            return False
        self._run("postconf", "-e", f"defer_transports = {' '.join(wanted)}")
        return True

    def _set_pickup_filter(self, on: bool) -> bool:
        """Put pickup's reroute filter in master.cf (or take it out); True if changed."""
        found = self._run("postconf", "-P", "pickup/unix/content_filter").strip()
        has = found.endswith(PICKUP_FILTER)
        if on and not has:
            self._run("postconf", "-P", f"pickup/unix/content_filter={PICKUP_FILTER}")
            return True
        if not on and has:
            self._run("postconf", "-PX", "pickup/unix/content_filter")
            return True
        return False

    def _reload(self) -> None:
        self._run("postfix", "reload")
        self._reloaded_once = True
        self._reloaded_at = time.monotonic()
        time.sleep(RELOAD_SETTLE)  # the daemons of the old configuration finish and exit

    def _queue(self) -> list[dict[str, object]]:
        entries = []
        for line in self._run("postqueue", "-j").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def _routed_to(self, transports: set[str]) -> list[str]:
        """Deferred messages whose stored route is one of ``transports``, and copies an
        earlier run re-queued without the filter (stranded: no route, and a ``log_ident``
        naming the message they were re-queued from)."""
        found = []
        deferred = [str(e.get("queue_id")) for e in self._queue()
                    if e.get("queue_name") == "deferred" and e.get("queue_id")]
        self._elsewhere = {q: t for q, t in self._elsewhere.items() if q in deferred}
        for queue_id in deferred:
            route = self._elsewhere.get(queue_id)
            if route is None:
                try:
                    envelope = self._run("postcat", "-e", "-q", queue_id)
                except PostfixToolError:
                    continue  # delivered or moved meanwhile
                match = _FILTER_RECORD.search(envelope)
                route = match.group(1) if match else ""
                ident = _LOG_IDENT.search(envelope)
                if not route and ident and ident.group(1) != queue_id:
                    route = STRANDED
                elif route not in transports:
                    self._elsewhere[queue_id] = route
            if route in transports or route == STRANDED:
                found.append(queue_id)
        return found

    def _wait_maildrop(self) -> int:
        deadline = time.monotonic() + self.settle_timeout
        kicked = False
        while True:
            waiting = sum(1 for e in self._queue() if e.get("queue_name") == "maildrop")
            if not waiting or time.monotonic() >= deadline:
                return waiting
            if not kicked:  # a run killed before its postkick: pickup sleeps up to 60 s
                self._run("postkick", "public", "pickup", "W")
                kicked = True
            time.sleep(0.2)
