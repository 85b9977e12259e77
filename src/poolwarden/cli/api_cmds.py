"""``poolwarden token|user ...`` and the reads that mirror the REST API.

* ``token create|list|revoke``: API tokens (shown once at creation, stored hashed).
* ``user add|list|remove``: dashboard users (password from a prompt or a file).
* ``pools``, ``decisions``, ``summary``, ``overrides``, ``held``, ``alerts``, ``audit`` and
  ``tenant moves``: the API's GET routes as commands; ``--json`` prints exactly
  what the route returns (the same functions build both; ``API_PARITY`` maps
  each route to its command and a test holds them equal).

Every write here leaves an audit row with source ``cli``. Errors print one
line on stderr and exit with status 2.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from poolwarden.cli.common import (
    ConfigOption,
    JsonOption,
    config_path,
    err,
    fail,
    guarded,
    out,
)

if TYPE_CHECKING:
    from poolwarden.services.queries.context import NodeContext

token_app = typer.Typer(no_args_is_help=True, help="API tokens: create, list, revoke.")
user_app = typer.Typer(no_args_is_help=True, help="Dashboard users: add, list, remove.")

TenantOption = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")]

# GET route of the API -> the command that prints the same data with --json
# ({name} placeholders are filled with the same values as the path's).
API_PARITY: dict[str, list[str]] = {
    "/api/v1/tenants": ["tenants"],
    "/api/v1/tenants/{tenant}": ["tenant", "show", "{tenant}"],
    "/api/v1/tenants/{tenant}/moves": ["tenant", "moves", "{tenant}"],
    "/api/v1/pools": ["pools"],
    "/api/v1/ips": ["ips"],
    "/api/v1/blocklists": ["blocklists"],
    "/api/v1/ips/{address}": ["ip", "show", "{address}"],
    "/api/v1/ips/{address}/neighbours": ["ip", "neighbours", "{address}"],
    "/api/v1/decisions": ["decisions"],
    "/api/v1/summaries": ["summary"],
    "/api/v1/overrides": ["overrides"],
    "/api/v1/held": ["held"],
    "/api/v1/alerts": ["alerts"],
    "/api/v1/audit": ["audit"],
    "/api/v1/tenants/{tenant}/domains": ["domains", "--tenant", "{tenant}"],
    "/api/v1/dmarc/reports": ["dmarc", "reports"],
}

T = TypeVar("T")




@contextmanager
def context_for(option: Path | None) -> Iterator[NodeContext]:
    """A standalone ``NodeContext`` over the configured store, as the API builds one."""
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config
    from poolwarden.services.queries.context import NodeContext

    config = load_config(config_path(option))
    store = open_store(config.store_url)
    try:
        settings = config.settings.policyd
        yield NodeContext(loaded_config=config, store=store, engine_ttl=0,
                         postfix_config_dir=settings.postfix_config_dir)
    finally:
        store.close()


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _actor(actor: str | None) -> str:
    return f"cli:{actor or os.environ.get('USER') or 'operator'}"


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*(escape("" if row.get(c) is None else str(row.get(c))) for c in columns))
    out.print(table)


def _show(rows: list[dict[str, Any]], columns: list[str], json_out: bool) -> None:
    """The rows as the route's JSON, or as a table of ``columns``."""
    if json_out:
        emit_json(rows)
    else:
        _table(rows, columns)


# -- tokens ---------------------------------------------------------------------------


def _token_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "role": row.role,
            "tenant": row.tenant, "created_at": row.created_at, "created_by": row.created_by,
            "last_used_at": row.last_used_at, "revoked_at": row.revoked_at}


@token_app.command("create")
@guarded
def token_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    role: Annotated[str, typer.Option("--role", help="operator-read, operator-write or "
                                      "tenant.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant of a tenant "
                                               "token.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who [default: $USER].")] = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create an API token; it is printed once and only its hash is kept."""
    from poolwarden.services.access import audit, auth

    with context_for(config) as ctx:
        known = {t.name for t in ctx.config.inventory.tenants}
        new = auth.create_token(ctx.store, name=name, role=role, tenant=tenant,
                                created_by=_actor(actor), now=time.time(), known_tenants=known)
        audit.record(ctx.store, actor=_actor(actor), source="cli", action="token.create",
                     target=f"token:{new.id}", at=time.time(), after=_token_dict(new.row))
    if json_out:
        emit_json({**_token_dict(new.row), "token": new.secret})
    else:
        out.print(f"token {new.id} ({escape(new.row.role)}): {new.secret}")
        err.print("store it now: it is not shown again")


@token_app.command("list")
@guarded
def token_list(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every token (never the token itself): prefix, role, tenant, last use, revocation."""
    with context_for(config) as ctx:
        rows = [_token_dict(t) for t in ctx.store.tokens()]
    _show(rows, ["id", "name", "prefix", "role", "tenant", "last_used_at", "revoked_at"], json_out)


@token_app.command("revoke")
@guarded
def token_revoke(token_id: Annotated[int, typer.Argument(help="Token id (token list).")],
                 actor: Annotated[str | None, typer.Option(help="Who [default: $USER].")]
                 = None,
                 config: ConfigOption = None) -> None:
    """Revoke a token: it is refused from its next request on."""
    from poolwarden.services.access import audit, auth

    with context_for(config) as ctx:
        if not auth.revoke(ctx.store, token_id, now=time.time()):
            fail(f"no live token {token_id}")
        audit.record(ctx.store, actor=_actor(actor), source="cli", action="token.revoke",
                     target=f"token:{token_id}", at=time.time(), before={"revoked": False},
                     after={"revoked": True})
    out.print(f"token {token_id} revoked")


# -- users ----------------------------------------------------------------------------


@user_app.command("add")
@guarded
def user_add(
    name: str,
    role: Annotated[str, typer.Option("--role", help="operator-read, operator-write or "
                                      "tenant.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant of a tenant "
                                               "user.")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Read the password from this file (first line) instead "
        "of a prompt.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who [default: $USER].")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a dashboard user (scrypt-hashed password)."""
    from poolwarden.services.access import audit, auth

    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            fail(f"{password_file}: cannot read a password: {exc}")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with context_for(config) as ctx:
        known = {t.name for t in ctx.config.inventory.tenants}
        row = auth.create_user(ctx.store, name=name, password=password, role=role,
                               tenant=tenant, now=time.time(), known_tenants=known)
        audit.record(ctx.store, actor=_actor(actor), source="cli", action="user.add",
                     target=f"user:{row.name}", at=time.time(),
                     after={"role": row.role, "tenant": row.tenant})
    out.print(f"user {escape(row.name)} added ({escape(row.role)})")


@user_app.command("list")
@guarded
def user_list(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every dashboard user with role and tenant (never a password hash)."""
    with context_for(config) as ctx:
        rows = [{"name": u.name, "role": u.role, "tenant": u.tenant,
                 "created_at": u.created_at, "disabled": u.disabled}
                for u in ctx.store.users()]
    _show(rows, ["name", "role", "tenant", "disabled"], json_out)


@user_app.command("remove")
@guarded
def user_remove(name: str,
                actor: Annotated[str | None, typer.Option(help="Who [default: $USER].")]
                = None,
                config: ConfigOption = None) -> None:
    """Remove a dashboard user."""
    from poolwarden.services.access import audit

    with context_for(config) as ctx:
        found = ctx.store.user(name)
        if found is None or not ctx.store.remove_user(name):
            fail(f"no user '{name}'")
        audit.record(ctx.store, actor=_actor(actor), source="cli", action="user.remove",
                     target=f"user:{name}", at=time.time(),
                     before={"role": found.role, "tenant": found.tenant})
    out.print(f"user {escape(name)} removed")


# -- API reads as commands ------------------------------------------------------------------


def pools(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every pool: its IPs, the tenants it carries and active reaction rules."""
    from poolwarden.services.queries.listings import pool_rows

    with context_for(config) as ctx:
        rows = pool_rows(ctx.snapshot())
    if json_out:
        emit_json(rows)
    else:
        _table([{**r, "ips": ", ".join(r["ips"]), "tenants": ", ".join(r["tenants"]),
                 "restrictions": len(r["restrictions"])} for r in rows],
               ["name", "kind", "ips", "tenants", "restrictions"])


def decisions(
    tenant: TenantOption = None,
    action: Annotated[str | None, typer.Option(help="Only this action (HOLD, …).")] = None,
    since: Annotated[float | None, typer.Option(help="Epoch seconds.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Recent routing decisions, newest first."""
    from poolwarden.services.queries.listings import decision_rows

    with context_for(config) as ctx:
        rows = decision_rows(ctx, tenant=tenant, action=action, since=since, limit=limit)
    _show(rows, ["at", "tenant", "recipient", "action", "ip", "pool", "rule", "queue_id"], json_out)


def summary(
    by: Annotated[str, typer.Option(help="tenant, ip, provider or day.")] = "tenant",
    tenant: TenantOption = None,
    days: Annotated[int, typer.Option(min=1, max=400)] = 30,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Event counts per tenant, IP, provider or day."""
    from poolwarden.services.queries.listings import By, summary_rows

    try:
        grouping = By(by)
    except ValueError:
        fail(f"--by: one of {', '.join(b.value for b in By)}")
    with context_for(config) as ctx:
        rows = summary_rows(ctx, by=grouping, tenant=tenant, days=days)
    _show(rows, ["key", "volume", "delivered", "hard_bounces", "soft_bounces", "deferred",
                 "complaints", "trap_hits"], json_out)


def overrides(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Tenants pinned to a tier by an operator, with who and why."""
    from poolwarden.services.queries.listings import override_rows

    with context_for(config) as ctx:
        rows = override_rows(ctx.engine())
    _show(rows, ["tenant", "tier", "pinned_by", "pinned_why"], json_out)


def held(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Held mail per tenant: HOLD decisions and, with Postfix, the hold queue."""
    from poolwarden.services.queries.held import node_held_rows

    with context_for(config) as ctx:
        rows = node_held_rows(ctx, None)
    _show(rows, ["tenant", "held_decisions", "in_queue"], json_out)


def alerts(
    kind: Annotated[str | None, typer.Option(help="Only this kind (tier_move, …).")] = None,
    since: Annotated[float | None, typer.Option(help="Epoch seconds.")] = None,
    tenant: TenantOption = None,
    ip: Annotated[str | None, typer.Option(help="Only alerts about this egress IP.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Recent alerts, newest first, each with its explanation and dashboard link."""
    from poolwarden.services.queries.listings import alert_rows

    with context_for(config) as ctx:
        rows = alert_rows(ctx, kind=kind, since=since, tenant=tenant, ip=ip, limit=limit)
    _show(rows, ["at", "kind", "tenant", "ip", "subject", "link"], json_out)


def audit_cmd(
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    since: Annotated[float | None, typer.Option(help="Epoch seconds.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """The audit log, newest first: every write and every refused API request."""
    from poolwarden.services.queries.listings import audit_rows

    with context_for(config) as ctx:
        rows = audit_rows(ctx, actor=actor, action=action, target=target, since=since,
                          limit=limit)
    _show(rows, ["id", "at", "actor", "source", "action", "target"], json_out)


def tenant_moves(name: str, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
                 config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """The tenant's tier moves, newest first, with their numbers and thresholds."""
    from poolwarden.services.queries import reports

    with context_for(config) as ctx:
        if name not in {t.name for t in ctx.config.inventory.tenants}:
            fail(f"unknown tenant '{name}'")
        rows = [reports.move_dict(m) for m in ctx.store.moves(name, limit=limit)]
    _show(rows, ["at", "before", "after", "rule", "actor", "reason"], json_out)


def ip_neighbours(address: str, config: ConfigOption = None,
                  json_out: JsonOption = False) -> None:
    """Which tenant caused which share of the IP's bounces, complaints and traps."""
    from poolwarden.services.queries import reports

    with context_for(config) as ctx:
        snapshot = ctx.snapshot()
        if address not in snapshot.ips:
            fail(f"unknown IP '{address}'")
        rows = reports.ip_detail(ctx.engine(), snapshot, address, ctx.now())["neighbours"]
    _show(rows, ["tenant", "volume", "bounce_share", "complaint_share", "trap_share",
                 "harm"], json_out)


def register(app: typer.Typer, tenant_app: typer.Typer, ip_app: typer.Typer) -> None:
    """Add these commands to the ``poolwarden`` app (called by ``cli.main``)."""
    app.add_typer(token_app, name="token")
    app.add_typer(user_app, name="user")
    for fn, name in ((pools, "pools"), (decisions, "decisions"), (summary, "summary"),
                     (overrides, "overrides"), (held, "held"), (alerts, "alerts"),
                     (audit_cmd, "audit")):
        app.command(name)(guarded(fn))
    tenant_app.command("moves")(guarded(tenant_moves))
    ip_app.command("neighbours")(guarded(ip_neighbours))
