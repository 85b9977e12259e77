"""Read models of reaction-rule activations for ``tenant show`` / ``ip show`` (and the API).

Plain dicts, JSON-ready: each activation with its rule, scope, phase at ``now``
(active, ramping ×f, expired), the limit it puts on routing right now, the numbers
behind it and the log lines that triggered it. Reads the store only.
"""

from __future__ import annotations

from typing import Any

from poolwarden.core.reaction import Activation
from poolwarden.core.shaping import RestrictionKind
from poolwarden.ports import Store

SHOWN = 50  # newest activations listed per tenant or IP


def effect_now(a: Activation, now: float) -> str | None:
    """What the activation does to routing at ``now``, as ``decide()`` combines its
    restrictions: a pause wins, then a reroute, then the smallest cap."""
    found = a.restrictions(now)
    kinds = {r.kind for r in found}
    if RestrictionKind.PAUSE in kinds:
        return "pause"
    if RestrictionKind.REROUTE in kinds:
        return f"reroute → {a.pool}"
    caps = [r.cap_factor for r in found if r.kind is RestrictionKind.CAP]
    return f"cap ×{min(caps):g}" if caps else None


def activation_dict(a: Activation, now: float) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "action": a.action.value, "scope": a.scope.value,
            "provider": a.provider, "ip": a.ip, "tenant": a.tenant,
            "started_at": a.started_at, "until": a.until, "ends_at": a.ends_at,
            "ramp": [{"cap_factor": f, "until": u} for f, u in a.steps],
            "phase": a.phase(now), "in_force": now < a.ends_at,
            "effect_now": effect_now(a, now),
            "matches": a.matches, "trigger_count": a.threshold, "trigger_period_s": a.period,
            "why": a.why, "lines": list(a.lines), "recorded_at": a.recorded_at}


def _merged(groups: list[list[Activation]]) -> list[Activation]:
    seen: dict[int | None, Activation] = {}
    for group in groups:
        for a in group:
            seen.setdefault(a.id, a)
    return sorted(seen.values(), key=lambda a: -(a.id or 0))[:SHOWN]


def for_tenant(store: Store, tenant: str, dedicated_ips: tuple[str, ...],
               now: float) -> list[dict[str, Any]]:
    """The tenant's activations: tenant-scoped ones, IP-scoped ones its lines triggered,
    and those on its dedicated IPs; newest first."""
    groups = [store.reaction_activations(tenant=tenant, limit=SHOWN)]
    groups += [store.reaction_activations(ip=ip, limit=SHOWN) for ip in dedicated_ips]
    return [activation_dict(a, now) for a in _merged(groups)]


def for_ip(store: Store, address: str, now: float) -> list[dict[str, Any]]:
    return [activation_dict(a, now)
            for a in store.reaction_activations(ip=address, limit=SHOWN)]
