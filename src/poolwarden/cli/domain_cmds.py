"""``poolwarden domains`` and ``poolwarden domain show``: sending domains and their auth.

* ``domains [--check] [--tenant T]``: every tenant domain with its roles, the worst status
  of each check (SPF, SPF per route, DKIM, DMARC, alignment, tracking) and what DMARC
  reports say (aligned pass share, foreign mail); ``--check`` asks the DNS first
  (``domains.nameservers``) and stores the findings the routing setting
  ``skip_spf_unauthorized`` and the alerts use.
* ``domain show DOMAIN [--check]``: every finding with its record text and reason, and the
  DMARC pass shares by route with the sources that are not ours.
* ``dmarc reports [--status S]``: the reports received, newest first, refusals with their
  reasons and stored reports with their warnings.

Both take ``--json``. Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from poolwarden.cli.common import ConfigOption, JsonOption, config_path, fail, guarded, out

domain_app = typer.Typer(no_args_is_help=True, help="One sending domain.")
dmarc_app = typer.Typer(no_args_is_help=True, help="DMARC aggregate reports received.")
CheckOption = Annotated[bool, typer.Option(
    "--check", help="Ask the DNS now (domains.nameservers) and store the findings.")]
MARK = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "error": "[red]error[/]",
        "unknown": "[dim]unknown[/]", "unchecked": "[dim]unchecked[/]"}


def _views(config_option: Any, *, check: bool, tenant: str | None = None,
           domain: str | None = None) -> list[Any]:
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config
    from poolwarden.services.domains.view import domain_views, run_checks

    config = load_config(config_path(config_option))
    store = open_store(config.store_url)
    try:
        if check:
            owners = None
            if tenant is not None:
                owners = [tenant]
            elif domain is not None:
                owners = [t.name for t in config.inventory.tenants
                          if any(d.domain == domain for d in t.domain_roles())] or None
            run_checks(config, store, time.time(), owners)
        return domain_views(config, store, tenant=tenant, domain=domain)
    finally:
        store.close()


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def register(app: typer.Typer) -> None:
    app.add_typer(domain_app, name="domain")
    app.add_typer(dmarc_app, name="dmarc")

    @dmarc_app.command("reports")
    @guarded
    def dmarc_reports(config: ConfigOption = None, json_out: JsonOption = False,
                      status: Annotated[str | None, typer.Option(
                          help="stored, rejected or skipped.")] = None,
                      limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
        """DMARC reports received, newest first: stored, rejected (with the reason)."""
        from dataclasses import asdict

        from poolwarden.adapters.sqlstore import open_store
        from poolwarden.config.load import load_config

        store = open_store(load_config(config_path(config)).store_url)
        try:
            rows = store.dmarc_reports(status=status, limit=limit)
        finally:
            store.close()
        if json_out:
            sys.stdout.write(json.dumps([{**asdict(r), "warnings": list(r.warnings)}
                                         for r in rows]) + "\n")
            return
        for r in rows:
            what = (f"{escape(r.org_name)} {escape(r.report_id)} for "
                    f"{escape(r.policy_domain)}: {r.records} records, {r.messages:,} messages"
                    if r.status == "stored" else escape(r.reason))
            out.print(f"{MARK.get('ok' if r.status == 'stored' else 'warning')} "
                      f"{r.status} {escape(r.source)}: {what}")
            for warning in r.warnings:
                out.print(f"    warning: {escape(warning)}")

    @app.command()
    @guarded
    def domains(config: ConfigOption = None, json_out: JsonOption = False,
                check: CheckOption = False,
                tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
                ) -> None:
        """Every tenant domain: roles, authentication checks, DMARC pass share."""
        views = _views(config, check=check, tenant=tenant)
        if json_out:
            sys.stdout.write(json.dumps([v.as_dict() for v in views]) + "\n")
            return
        from rich.table import Table

        table = Table("tenant", "domain", "roles", "status", "checks", "DMARC pass",
                      "foreign msgs", box=None)
        for v in views:
            checks = " ".join(f"{k}:{s}" for k, s in v.by_check().items() if s != "ok")
            dmarc = v.dmarc
            table.add_row(escape(v.tenant or "(pool)"), escape(v.domain),
                          escape(",".join(v.roles)), MARK.get(v.status, v.status),
                          escape(checks or ("all ok" if v.findings else "-")),
                          _share(dmarc.ours.ratio(dmarc.ours.dmarc_pass)) if dmarc else "-",
                          f"{dmarc.foreign.messages:,}" if dmarc else "-")
        out.print(table)

    @domain_app.command("show")
    @guarded
    def domain_show(name: str, config: ConfigOption = None, json_out: JsonOption = False,
                    check: CheckOption = False) -> None:
        """One domain: every finding with its record and reason; DMARC shares by route."""
        views = _views(config, check=check, domain=name.lower().rstrip("."))
        if not views:
            fail(f"no tenant or pool declares the domain {name!r}")
        if json_out:
            sys.stdout.write(json.dumps([v.as_dict() for v in views]) + "\n")
            return
        for v in views:
            out.print(f"[bold]{escape(v.domain)}[/] ({escape(v.tenant or 'pool')}; roles "
                      f"{escape(', '.join(v.roles))}): {MARK.get(v.status, v.status)}")
            for f in v.findings:
                where = f" [{escape(f.route)} {escape(f.ip or '')}]" if f.route else ""
                out.print(f"  {MARK.get(f.status, f.status)} {escape(f.check)}{where}: "
                          f"{escape(f.reason)}")
                if f.record and f.check not in ("spf-route",):
                    out.print(f"      record: {escape(f.record)}")
            if v.dmarc is None:
                out.print("  DMARC reports: none received")
                continue
            d = v.dmarc
            out.print(f"  DMARC reports: {d.ours.messages:,} messages from our IPs, "
                      f"{_share(d.ours.ratio(d.ours.dmarc_pass))} passed "
                      f"(DKIM aligned {_share(d.ours.ratio(d.ours.dkim_aligned))}, SPF "
                      f"aligned {_share(d.ours.ratio(d.ours.spf_aligned))})")
            for route, share in sorted(d.by_route.items()):
                out.print(f"    route {escape(route)}: {share.messages:,} messages, DMARC "
                          f"{_share(share.ratio(share.dmarc_pass))}, SPF aligned "
                          f"{_share(share.ratio(share.spf_aligned))}, DKIM aligned "
                          f"{_share(share.ratio(share.dkim_aligned))}")
            for ip, share in sorted(d.foreign_sources.items(), key=lambda kv: -kv[1].messages):
                out.print(f"    not ours: {escape(ip)}: {share.messages:,} messages, "
                          f"{share.dmarc_pass:,} passed DMARC")
            for finding in d.findings:
                out.print(f"  [yellow]![/] {escape(finding)}")
