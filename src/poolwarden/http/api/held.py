"""Held mail: how many messages are held per tenant, and releasing them.

Counts come from the decision log (HOLD decisions) and, when a Postfix
configuration directory is configured, from ``postqueue -j`` (the hold
queue, each message attributed by the decision log, else by sender domain,
exactly as ``poolwarden hold release`` does). Release runs ``postsuper -H``
(keeps the route the agent stored with the message) and only for a tenant
that may send again; it is audited. ``postfix_tool`` and ``release`` are the
dashboard's too, so both surfaces release the same way.

Why ``-H`` and never ``-r``, even for long holds (RELIABILITY A1 suggests ``-r``
against ``maximal_queue_lifetime``): measured on the real Postfix lab, ``-r``
sends the message back through pickup and cleanup, which drop the FILTER
(content_filter) record the agent set at END-OF-MESSAGE, and pickup never asks
the policy service again; the message is then deferred as "no poolwarden route"
for good (``tests/http/test_release_requeue_postfix.py``, docs/design-notes.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from poolwarden.cli.postfix_cmds import HELD_STANDINGS, held_messages, tenant_by_sender
from poolwarden.http.access import (
    API_PREFIX,
    UNKNOWN_TENANT,
    Caller,
    Ctx,
    Rule,
    route,
    scoped_tenant,
)
from poolwarden.http.context import AppContext
from poolwarden.http.models import Held, ReleaseIn, ReleaseOut
from poolwarden.services.access import audit

router = APIRouter(prefix=API_PREFIX, tags=["held mail"])
LOG_SCAN = 10_000  # recent decisions read for the HOLD counts
TOOL_TIMEOUT = 60.0


class PostfixUnavailableError(Exception):
    pass


def postfix_tool(ctx: AppContext, name: str, *args: str, stdin: str | None = None) -> str:
    """Run a Postfix command (``postqueue``, ``postsuper``…) on the configured instance
    (``-c ctx.postfix_config_dir``) and return its stdout.

    Raises ``PostfixUnavailableError`` when no instance is configured, the command is not
    installed, it times out (``TOOL_TIMEOUT``) or it exits non-zero; callers answer 503
    and change nothing (fail safe: held mail stays held).
    """
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None or ctx.postfix_config_dir is None:
        raise PostfixUnavailableError(name)
    try:
        done = subprocess.run([found, "-c", ctx.postfix_config_dir, *args], input=stdin,
                              capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostfixUnavailableError(name) from exc
    if done.returncode != 0:
        raise PostfixUnavailableError(name)
    return done.stdout


def _owner(ctx: AppContext, queue_id: str, domains: dict[str, str], sender: str) -> str | None:
    tenants = {r.tenant for r in ctx.store.decisions(queue_id=queue_id, limit=10) if r.tenant}
    if len(tenants) == 1:
        return tenants.pop()
    return tenant_by_sender(sender, domains)


def queued(ctx: AppContext) -> dict[str, list[str]] | None:
    """Queue ids in Postfix's hold queue per tenant; None without a usable Postfix."""
    if ctx.postfix_config_dir is None:
        return None
    try:
        messages = held_messages(postfix_tool(ctx, "postqueue", "-j"))
    except PostfixUnavailableError:
        return None
    domains = {d.lower(): t.name for t in ctx.config.inventory.tenants for d in t.domains}
    out: dict[str, list[str]] = {}
    for message in messages:
        owner = _owner(ctx, message.queue_id, domains, message.sender)
        if owner is not None:
            out.setdefault(owner, []).append(message.queue_id)
    return out


def release(ctx: AppContext, queue_ids: list[str]) -> None:
    """Release these messages from Postfix's hold queue with ``postsuper -H``: each keeps
    the FILTER route the agent stored with it at END-OF-MESSAGE. (Not ``-r``: requeued
    mail loses that route; see the module docstring.)"""
    if queue_ids:
        postfix_tool(ctx, "postsuper", "-H", "-", stdin="".join(q + "\n" for q in queue_ids))


def held_rows(ctx: AppContext, tenant: str | None) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for row in ctx.store.decisions(tenant=tenant, limit=LOG_SCAN):
        if row.tenant and row.action.upper().startswith("HOLD"):
            counts[row.tenant] = counts.get(row.tenant, 0) + 1
    in_queue = queued(ctx)
    names = [t.name for t in ctx.config.inventory.tenants if tenant is None or t.name == tenant]
    return [{"tenant": name, "held_decisions": counts.get(name, 0),
             "in_queue": None if in_queue is None else len(in_queue.get(name, ()))}
            for name in names
            if counts.get(name) or (in_queue and in_queue.get(name)) or tenant is not None]


@route(router, "GET", "/held", Rule.TENANT_FILTER, response_model=list[Held],
       summary="Held mail per tenant (tenants with none are left out)")
def list_held(request: Request, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    return held_rows(ctx, scoped_tenant(ctx, request, who, None))


@route(router, "POST", "/held/release", Rule.OPERATOR_WRITE, response_model=ReleaseOut,
       summary="Release a tenant's held mail once it may send again (audited)")
def release_held(body: ReleaseIn, ctx: Ctx, who: Caller) -> dict[str, Any]:
    engine = ctx.engine()
    if body.tenant not in engine.tenants:
        raise HTTPException(404, UNKNOWN_TENANT)
    tier = engine.standings()[body.tenant].tier.value
    if tier in HELD_STANDINGS:
        raise HTTPException(409, f"the tenant is {tier}: its mail stays held until it may "
                            "send again")
    in_queue = queued(ctx)
    if in_queue is None:
        raise HTTPException(503, "no Postfix to release from (policyd.postfix_config_dir)")
    mine = in_queue.get(body.tenant, [])
    if mine and not body.dry_run:
        try:
            release(ctx, mine)
        except PostfixUnavailableError:
            raise HTTPException(503, "postsuper failed; nothing was released") from None
        audit.record(ctx.store, actor=who.name, source="api", action="held.release",
                     target=f"tenant:{body.tenant}", at=ctx.now(),
                     before={"held": len(mine)}, after={"released": mine})
    return {"tenant": body.tenant, "released": 0 if body.dry_run else len(mine),
            "queue_ids": mine, "dry_run": body.dry_run}
