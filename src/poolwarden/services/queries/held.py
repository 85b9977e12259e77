"""Held mail: whose messages sit in Postfix's hold queue, HOLD counts per tenant, and releasing
a tenant's mail. The API, the dashboard and ``poolwarden hold release`` all come here.

A held message belongs to the tenant the routing agent recorded for its queue id in the
decision log (when exactly one tenant is recorded), else to the tenant whose sending domain
(or a parent of it) is the sender's domain. Release is ``postsuper -H`` and only for a
tenant that may send again (not suspended or off-platform): the route the agent stored with
each message stays. Running the tools is ``adapters.postqueue``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolwarden.adapters.postqueue import TOOL_TIMEOUT, HeldMessage, PostfixToolError, hold_queue
from poolwarden.config.load import LoadedConfig
from poolwarden.core.errors import PoolwardenError
from poolwarden.ports import Store
from poolwarden.services.queries.context import NodeContext

HELD_STANDINGS = ("suspended", "off-platform")  # standings whose mail must stay held
LOG_SCAN = 10_000  # recent decisions read for the HOLD counts


def tenant_by_sender(sender: str, domains: dict[str, str]) -> str | None:
    """The tenant whose sending domain (or a parent of it) is the sender's domain."""
    _, at, domain = sender.rpartition("@")
    domain = domain.strip().lower().rstrip(".") if at else ""
    while domain:
        if domain in domains:
            return domains[domain]
        _, _, domain = domain.partition(".")
    return None


def logged_owner(store: Store, queue_id: str) -> str | None:
    """The tenant the routing agent recorded for this queue id, if the log has exactly one."""
    try:
        rows = store.decisions(queue_id=queue_id, limit=10)
    except PoolwardenError:
        return None
    tenants = {row.tenant for row in rows if row.tenant}
    return tenants.pop() if len(tenants) == 1 else None


@dataclass
class HoldQueue:
    """The hold queue, its messages attributed to tenants."""

    total: int = 0
    by_tenant: dict[str, list[HeldMessage]] = field(default_factory=dict)
    by_log: dict[str, int] = field(default_factory=dict)  # attributed by the decision log

    def queue_ids(self, tenant: str) -> list[str]:
        return [m.queue_id for m in self.by_tenant.get(tenant, ())]


def hold_queue_by_tenant(config: LoadedConfig, store: Store, config_dir: str | Path | None,
                         *, timeout: float = TOOL_TIMEOUT) -> HoldQueue:
    """Postfix's hold queue per tenant (``PostfixToolError`` without a usable Postfix)."""
    messages = hold_queue(config_dir, timeout=timeout)
    domains = {d.lower(): t.name for t in config.inventory.tenants for d in t.domains}
    result = HoldQueue(total=len(messages))
    for message in messages:
        owner = logged_owner(store, message.queue_id)
        if owner is not None:
            result.by_log[owner] = result.by_log.get(owner, 0) + 1
        else:
            owner = tenant_by_sender(message.sender, domains)
        if owner is not None:
            result.by_tenant.setdefault(owner, []).append(message)
    return result


def held_rows(config: LoadedConfig, store: Store, queue: HoldQueue | None,
              tenant: str | None) -> list[dict[str, Any]]:
    """Per tenant: HOLD decisions in the recent log and messages in the hold queue (None
    without a usable Postfix); tenants with neither are left out unless asked for."""
    counts: dict[str, int] = {}
    for row in store.decisions(tenant=tenant, limit=LOG_SCAN):
        if row.tenant and row.action.upper().startswith("HOLD"):
            counts[row.tenant] = counts.get(row.tenant, 0) + 1
    names = [t.name for t in config.inventory.tenants if tenant is None or t.name == tenant]
    in_queue = None if queue is None else queue.by_tenant
    return [{"tenant": name, "held_decisions": counts.get(name, 0),
             "in_queue": None if in_queue is None else len(in_queue.get(name, ()))}
            for name in names
            if counts.get(name) or (in_queue and in_queue.get(name)) or tenant is not None]


def node_hold_queue(ctx: NodeContext) -> HoldQueue | None:
    """The node's hold queue per tenant; None without a configured, working Postfix."""
    if ctx.postfix_config_dir is None:
        return None
    try:
        return hold_queue_by_tenant(ctx.config, ctx.store, ctx.postfix_config_dir)
    except PostfixToolError:
        return None


def node_held_rows(ctx: NodeContext, tenant: str | None) -> list[dict[str, Any]]:
    """``held_rows`` for the node, with its hold queue when it has a Postfix."""
    return held_rows(ctx.config, ctx.store, node_hold_queue(ctx), tenant)
