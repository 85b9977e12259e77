"""What a tenant (a tenant API token or a tenant dashboard user) may see of its own data.

One place for the rule every surface applies (the API's tenant routes, the
dashboard's tenant page, the alert list): an operator's identity (user, token
or login name) is not the tenant's business, so wherever a field names the
operator who pinned or moved the tenant it reads ``"operator"``. Automatic
moves keep their actor (``poolwarden``) and every explanation (rule, numbers,
thresholds, reason) stays. Raw log lines behind reaction rules are left out
(operators read those). Pure functions over the read models' plain dicts.
"""

from __future__ import annotations

from typing import Any

OPERATOR = "operator"  # what a tenant sees instead of an operator's name
AUTOMATIC_SOURCE = "engine"  # moves made by poolwarden itself (TierMove.automatic)
MOVE_ALERTS = frozenset({"tier_move", "suspension"})
# alert kinds a tenant may read about itself; the others concern shared resources (a bad
# neighbour's shares and totals are aggregates over the other tenants on the IP) or the
# platform (ingestion, the routing agent, warm-up of IPs)
TENANT_ALERT_KINDS = MOVE_ALERTS | {"reaction"}


def move(row: dict[str, Any]) -> dict[str, Any]:
    """A tier move (``reports.move_dict``): an operator's move names no operator."""
    if row.get("source") == AUTOMATIC_SOURCE:
        return row
    return {**row, "actor": OPERATOR}


def standing(row: dict[str, Any]) -> dict[str, Any]:
    """A row with ``pinned_by`` (an override, a tenant detail): the pin names no operator."""
    if not row.get("pinned_by"):
        return row
    return {**row, "pinned_by": OPERATOR}


def reaction(row: dict[str, Any]) -> dict[str, Any]:
    """A reaction-rule activation: numbers kept, raw log lines left out."""
    return {**row, "lines": []} if "lines" in row else row


def tenant_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """A tenant detail (API ``GET /tenants/{t}``, the dashboard's tenant page)."""
    out = standing(detail)
    moves = [move(m) for m in detail.get("moves", [])]
    out = {**out, "moves": moves,
           "reactions": [reaction(a) for a in detail.get("reactions", [])]}
    explanation = detail.get("explanation")
    if isinstance(explanation, dict):  # the dashboard's: its last move is the newest one
        out["explanation"] = {**explanation, "last_move": moves[0] if moves else None}
    return out


def alert_visible(row: dict[str, Any], tenant: str) -> bool:
    """Whether a tenant may read this alert: about itself, and of a kind about it alone."""
    return row.get("tenant") == tenant and row.get("kind") in TENANT_ALERT_KINDS


def alert(row: dict[str, Any]) -> dict[str, Any]:
    """An alert as its tenant reads it (``alert_visible`` first): an operator's move says
    "by operator (source)"; reaction alerts lose their log lines."""
    numbers = dict(row.get("numbers") or {})
    text = str(row.get("text", ""))
    actor = numbers.get("actor")
    # services.alerts.watcher writes "<after> automatically, rule ..." for automatic moves and
    # "<after> by <actor> (<source>), rule ..." for an operator's
    if row.get("kind") in MOVE_ALERTS and actor and " automatically, rule " not in text:
        text = text.replace(f" by {actor} (", f" by {OPERATOR} (")
        numbers["actor"] = OPERATOR
    if "lines" in numbers:
        numbers["lines"] = []
    return {**row, "text": text, "numbers": numbers}
