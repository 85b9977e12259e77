"""The audit log: one append-only row per write, from the API, the CLI or the dashboard.

``record`` is what every writer calls (actor, source, action, target, before/after
as JSON objects); ``list_rows`` reads them back newest first. There is no update and
no delete anywhere: the store offers neither (docs/testing.md S5, ASVS 16.4.2). Text
is stored as given (cleaned of NULs and cut); every surface escapes it when it shows
it, so a crafted actor or target cannot forge log lines (ASVS 16.4.1).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from poolwarden.core.tiers import TierMove
from poolwarden.ports import AccessStore, AuditRow

SOURCES = ("api", "cli", "dashboard", "engine")


def record(store: AccessStore, *, actor: str, source: str, action: str, target: str,
           at: float, before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None) -> int:
    """Append one audit row; its id."""
    if source not in SOURCES:
        raise ValueError(f"unknown audit source {source!r}")
    return store.add_audit(AuditRow(at=at, actor=actor, source=source, action=action,
                                    target=target, before=before, after=after))


def record_moves(store: AccessStore, moves: Sequence[TierMove], *, at: float) -> int:
    """One row per automatic tier move, with the numbers and thresholds behind it; the
    number written."""
    for move in moves:
        store.add_audit(AuditRow(
            at=at, actor=move.actor or "engine", source="engine", action="tier.move",
            target=f"tenant:{move.tenant}", before={"tier": move.before.value},
            after={"tier": move.after.value, "rule": move.rule, "reason": move.reason,
                   "metrics": move.metrics, "thresholds": move.thresholds}))
    return len(moves)


def list_rows(store: AccessStore, *, actor: str | None = None, action: str | None = None,
              target: str | None = None, since: float | None = None,
              limit: int = 100) -> builtins.list[AuditRow]:
    return store.audit(actor=actor, action=action, target=target, since=since, limit=limit)


# the brief's spelling: ``audit.list(...)``; ``list_rows`` avoids shadowing the builtin
# inside this module
list = list_rows


def as_dict(row: AuditRow) -> dict[str, Any]:
    return {"id": row.id, "at": row.at, "actor": row.actor, "source": row.source,
            "action": row.action, "target": row.target, "before": row.before,
            "after": row.after}
