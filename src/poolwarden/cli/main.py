"""The ``poolwarden`` command line: validate, route, inspect, import and override.

A thin surface: parses arguments, opens the configuration and the store,
calls the engine and renders (Rich tables, or ``--json`` for scripts).
Errors print one clear line on stderr and exit with status 2.

Start-up: ``--help`` and ``classify`` must answer in well under a second, so this module
imports no store, configuration schema, service or web framework at import time; each
command imports what it needs when it runs (a test holds ``sqlalchemy`` and ``fastapi``
out of ``sys.modules`` after importing this module).
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

from poolwarden.cli import api_cmds, domain_cmds, render
from poolwarden.cli.common import ConfigOption, JsonOption, config_path, fail, guarded, out
from poolwarden.cli.ingest_cmds import ingest_app
from poolwarden.cli.monitor_cmds import blocklists, check_app
from poolwarden.cli.postfix_cmds import hold_app, postfix_app
from poolwarden.core.model import Tier

if TYPE_CHECKING:  # the store, the configuration and the services load per command, lazily
    from poolwarden.config.load import LoadedConfig
    from poolwarden.services.reputation.engine import Engine

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="poolwarden: shared pool or dedicated IP, per tenant and per message.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect settings.")
events_app = typer.Typer(no_args_is_help=True, help="Import outcome events.")
tenant_app = typer.Typer(no_args_is_help=True, help="One tenant.")
ip_app = typer.Typer(no_args_is_help=True, help="One egress IP.")
app.add_typer(config_app, name="config")
app.add_typer(events_app, name="events")
app.add_typer(tenant_app, name="tenant")
app.add_typer(ip_app, name="ip")
app.add_typer(postfix_app, name="postfix")
app.add_typer(hold_app, name="hold")
app.add_typer(ingest_app, name="ingest")
app.add_typer(check_app, name="check")
app.command("blocklists")(guarded(blocklists))
api_cmds.register(app, tenant_app, ip_app)  # token, user and the API's reads
domain_cmds.register(app)  # domains, domain show

T = TypeVar("T")


@contextmanager
def engine_for(option: Path | None, now: float | None = None
               ) -> Iterator[tuple[LoadedConfig, Engine]]:
    """The configuration and an Engine over its store, its day counters loaded as of
    ``now`` (default: the clock)."""
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config
    from poolwarden.services.reputation.engine import Engine

    config = load_config(config_path(option))
    store = open_store(config.store_url)
    try:
        yield config, Engine(config, store, now=time.time() if now is None else now)
    finally:
        store.close()




def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


@app.command()
@guarded
def validate(file: Annotated[Path, typer.Argument(help="Configuration file to check.")]) -> None:
    """Check a configuration file; print each problem with its line and field."""
    from poolwarden.config.load import load_config

    config = load_config(file)
    inv = config.inventory
    out.print(f"[green]ok[/] {render.escape(str(file))}: {len(inv.tenants)} tenants, "
              f"{len(inv.ips)} IPs, {len(inv.pools)} pools, {len(inv.providers)} providers, "
              f"{len(config.reaction_rules)} reaction rules")
    from poolwarden.adapters.postfix_identity import claimable

    for warning in claimable(inv, config.settings.routing.tenant_lookup):
        out.print(f"[yellow]warning:[/] {render.escape(warning)}")


@config_app.command("defaults")
def config_defaults(json_out: JsonOption = False) -> None:
    """Print every setting with its type, default and help."""
    from poolwarden.config.schema import iter_settings

    rows = [{"name": n, "type": t, "default": d, "help": h} for n, t, d, h in iter_settings()]
    if json_out:
        emit_json(rows)
    else:
        render.settings_table(out, rows)


@app.command()
@guarded
def route(
    recipient: Annotated[str, typer.Option("--recipient", "-r", help="Recipient address.")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name.")] = None,
    sender: Annotated[str | None, typer.Option("--sender", "-s", help="Envelope sender.")] = None,
    sasl: Annotated[str | None, typer.Option("--sasl", help="SASL username.")] = None,
    client: Annotated[str | None, typer.Option("--client", help="Client IP address.")] = None,
    mx: Annotated[list[str] | None, typer.Option("--mx", help="MX host of the recipient "
                                                 "domain (repeatable).")] = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Decide the egress IP for one recipient, exactly as the routing agent would, and say
    how the recipient's provider was recognised (domain tables, or its MX: given with --mx,
    else looked up through monitors.nameservers when set)."""
    from poolwarden.cli.monitor_cmds import recognise
    from poolwarden.core.policy import RouteRequest

    with engine_for(config) as (loaded, engine):
        mx_hosts, provider, how = recognise(loaded, recipient, tuple(mx or ()))
        request = RouteRequest(recipient=recipient, tenant=tenant, sender=sender,
                               sasl_username=sasl, client_address=client, mx_hosts=mx_hosts)
        decision = engine.route(request, time.time())
    if json_out:
        emit_json({**decision.as_dict(), "recognised": {"provider": provider, "how": how,
                                                         "mx": list(mx_hosts)}})
    else:
        render.decision(out, decision)
        out.print(f"provider: {provider} ({how})", markup=False, highlight=False)


@app.command()
@guarded
def tenants(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every tenant: tier, pool, volume, rates with sample sizes, advice."""
    from poolwarden.services.queries import reports

    with engine_for(config) as (_, engine):
        now = time.time()
        rows = reports.tenant_rows(engine, engine.snapshot(now), now)
    if json_out:
        emit_json(rows)
    else:
        render.tenants_table(out, rows)


@tenant_app.command("show")
@guarded
def tenant_show(name: str, config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """One tenant: routes, metrics per provider, advice and the history of its moves."""
    from poolwarden.services.queries import reaction_report, reports

    with engine_for(config) as (_, engine):
        now = time.time()
        detail = reports.tenant_detail(engine, engine.snapshot(now), name, now)
        detail["reactions"] = reaction_report.for_tenant(
            engine.store, name, engine.tenants[name].dedicated_ips, now)
    if json_out:
        emit_json(detail)
    else:
        render.tenant_detail(out, detail)
        render.reactions(out, detail["reactions"])
        render.listings(out, detail.get("blocklists"))


@app.command()
@guarded
def ips(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every egress IP: state, pools, volume and rates."""
    from poolwarden.services.queries import reports

    with engine_for(config) as (_, engine):
        now = time.time()
        rows = reports.ip_rows(engine, engine.snapshot(now), now)
    if json_out:
        emit_json(rows)
    else:
        render.ips_table(out, rows)


@ip_app.command("show")
@guarded
def ip_show(address: str, config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """One egress IP, with the bad-neighbour ranking of the tenants that send from it."""
    from poolwarden.services.queries import reaction_report, reports

    with engine_for(config) as (_, engine):
        now = time.time()
        detail = reports.ip_detail(engine, engine.snapshot(now), address, now)
        detail["reactions"] = reaction_report.for_ip(engine.store, address, now)
    if json_out:
        emit_json(detail)
    else:
        render.ip_detail(out, detail)
        render.reactions(out, detail["reactions"])
        render.listings(out, detail.get("blocklists"))


@events_app.command("import")
@guarded
def events_import(
    file: Annotated[Path, typer.Argument(help="JSON lines of events.")],
    config: ConfigOption = None,
    evaluate: Annotated[bool, typer.Option(help="Evaluate tiers after importing.")] = True,
) -> None:
    """Import delivery, complaint and trap events (JSON lines); all or nothing."""
    from poolwarden.services.access import audit
    from poolwarden.services.ingest.event_import import import_event_file
    from poolwarden.services.queries import reports

    with engine_for(config) as (_, engine):
        result = import_event_file(engine, file, progress=not os.environ.get("CI"),
                                   now=time.time(), evaluate=evaluate)
        # each automatic move gets its audit row, as from ``evaluate`` and ``serve``
        audit.record_moves(engine.store, result.moves, at=time.time())
    out.print(f"{result.lines} lines: {result.added} events added, "
              f"{result.duplicates} already stored")
    for move in result.moves:
        render.move_line(out, reports.move_dict(move))


@app.command("evaluate")
@guarded
def evaluate_cmd(config: ConfigOption = None,
                 at: Annotated[float | None, typer.Option(
                     help="Evaluate as of this epoch time [default: now].")] = None) -> None:
    """Evaluate every tenant's tier now and record the moves (audited), then judge warm-up
    stages up to yesterday: one round of what ``serve``'s periodic job does."""
    from poolwarden.services.access import audit
    from poolwarden.services.queries import reports

    when = at if at is not None else time.time()
    with engine_for(config, when) as (_, engine):  # the counters around ``when``
        moves = engine.evaluate(when)
        audit.record_moves(engine.store, moves, at=time.time())
        # as services.runtime's evaluate job: warm-up advances after the tier moves
        warmup_notes = engine.advance_warmup(when)
    if not moves:
        out.print("no tier changes")
    for move in moves:
        render.move_line(out, reports.move_dict(move))
    for note in warmup_notes:
        out.print(f"warm-up {render.escape(note)}", highlight=False)


@app.command()
@guarded
def override(
    tenant: str,
    why: Annotated[str, typer.Option("--why", help="Why (recorded with the override).")],
    tier: Annotated[Tier | None, typer.Option("--tier", help="Pin the tenant to this tier.")]
    = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the pin.")] = False,
    actor: Annotated[str | None, typer.Option(help="Who [default: $USER].")] = None,
    config: ConfigOption = None,
) -> None:
    """Pin a tenant to a tier (or clear the pin); recorded with who and why."""
    from poolwarden.services.queries import reports

    who = actor or os.environ.get("USER") or "operator"
    if (tier is None) == (not clear):
        fail("give exactly one of --tier or --clear")
    with engine_for(config) as (_, engine):
        before = engine.standings().get(tenant)
        if clear:
            engine.clear_override(tenant, actor=who, why=why, now=time.time(), source="cli")
            out.print(f"{render.escape(tenant)}: pin cleared by {render.escape(who)}")
        else:
            assert tier is not None
            move = engine.override(tenant, tier, actor=who, why=why, now=time.time(),
                                   source="cli")
            render.move_line(out, reports.move_dict(move))
        _audit_override(engine, tenant, before, actor=who, clear=clear)


def _audit_override(engine: Engine, tenant: str, before: Any, *, actor: str,
                    clear: bool) -> None:
    """One audit row per CLI override, like the API's and the dashboard's."""
    from poolwarden.services.access import audit
    from poolwarden.services.queries.listings import standing_dict

    after = engine.standings()[tenant]
    audit.record(engine.store, actor=f"cli:{actor}", source="cli",
                 action="override.clear" if clear else "override.set",
                 target=f"tenant:{tenant}", at=time.time(),
                 before=standing_dict(tenant, before) if before is not None else None,
                 after=standing_dict(tenant, after))


@app.command()
def classify(
    files: Annotated[list[Path], typer.Argument(help="Bounce or complaint messages (.eml).")],
    json_out: JsonOption = False,
) -> None:
    """Classify bounce and complaint messages: each failed recipient with its reason."""
    from poolwarden.cli.classify_cmd import classify_command

    raise typer.Exit(classify_command(files, json_out))
