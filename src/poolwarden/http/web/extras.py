"""Optional dashboard sections that depend on what the store and runtime offer.

Alerts, held mail (the API's count: HOLD decisions and, with
a Postfix configuration directory, the hold queue) and warm-up state
come from other parts of the system; an alert section appears only when the
store keeps alerts, and a failing source hides its section (logged) instead of
failing the page.
Also turns audit rows into what the audit page shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from poolwarden.ports import AuditRow
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.queries.held import node_held_rows
from poolwarden.services.reputation.engine import DAY, Engine

log = logging.getLogger("poolwarden.http.web")

ALERT_DAYS = 7  # alerts this recent are listed on the overview
ALERT_LIMIT = 20


def overview(ctx: NodeContext, now: float) -> dict[str, Any]:
    found: dict[str, Any] = {}
    alerts = getattr(ctx.store, "alerts", None)
    if callable(alerts):
        try:
            found["alerts"] = [{"at": a.at, "kind": a.kind, "subject": a.subject,
                                "message": a.text, "link": a.link}
                               for a in alerts(since=now - ALERT_DAYS * DAY, limit=ALERT_LIMIT)]
        except Exception:  # a broken section must not take the whole page down
            log.exception("dashboard: could not list alerts")
    try:
        found["held"] = node_held_rows(ctx, None)
    except Exception:
        log.exception("dashboard: could not count held mail")
    return found


def held_for(ctx: NodeContext, tenant: str) -> dict[str, Any] | None:
    """One tenant's held mail (HOLD decisions; Postfix's hold queue when configured);
    None when it cannot be read (the section is left out, the page still shows)."""
    try:
        rows = node_held_rows(ctx, tenant)
    except Exception:
        log.exception("dashboard: could not count the held mail of %s", tenant)
        return None
    return rows[0] if rows else None


def warmup_getter(engine: Engine, now: float) -> Callable[[str], dict[str, Any] | None]:
    """A function giving an IP's warm-up progress (``services.reputation.warmup``'s read model, as
    ``poolwarden ip show`` prints it) with one row per provider; None when not warming."""

    def progress(address: str) -> dict[str, Any] | None:
        try:
            detail = engine.warmup().ip_detail(address, now)
        except Exception:  # the page still shows the IP's numbers
            log.exception("dashboard: could not read the warm-up state of %s", address)
            return None
        if detail is None:
            return None
        rows = [{"provider": p, "stage": detail["stages"][p], "cap": cap,
                 "sent": detail["counts"].get(p, 0), "why": detail["why"].get(p, "")}
                for p, cap in detail["caps"].items()]
        return {**detail, "rows": rows}

    return progress


def _tenant_of(target: str, tenants: set[str]) -> str | None:
    name = target.removeprefix("tenant:")
    return name if name in tenants else None


SHOWN_STATE = ("tier", "pinned", "pinned_by", "role", "revoked", "held", "released")


def _state_text(state: dict[str, Any] | None) -> str:
    """The parts of an audit row's before/after worth a column (the rest is in the API)."""
    if not state:
        return ""
    return ", ".join(f"{k}={state[k]}" for k in SHOWN_STATE if state.get(k) is not None)


def audit_view(row: AuditRow, tenants: set[str]) -> dict[str, Any]:
    after = row.after or {}
    detail = after.get("reason") or after.get("pinned_why") or ""
    return {"at": row.at, "actor": row.actor, "source": row.source, "action": row.action,
            "subject": row.target, "tenant": _tenant_of(row.target, tenants),
            "before": _state_text(row.before), "after": _state_text(row.after),
            "detail": str(detail)}
