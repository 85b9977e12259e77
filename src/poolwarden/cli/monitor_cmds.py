"""``poolwarden check blocklists|mx``: one-off DNS checks, as monitord runs them.

Asks only the configured resolver (``[monitors] nameservers``, or ``--nameserver``), never
the system's. ``check blocklists`` exits 1 when something is listed, 0 otherwise (unknown
answers are reported, not counted as listed); ``check mx`` shows which provider each
domain's MX points at and why. Stores nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from poolwarden.cli.common import ConfigOption, JsonOption, config_path, guarded, out

if TYPE_CHECKING:  # the configuration and the monitors load in the commands that use them
    from poolwarden.config.load import LoadedConfig

check_app = typer.Typer(no_args_is_help=True, help="One-off DNS checks (blocklists, MX).")

NameserverOption = Annotated[list[str] | None, typer.Option(
    "--nameserver", help="Ask this DNS server (IP or IP:PORT) instead of "
    "monitors.nameservers (repeatable).")]


def _emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@check_app.command("blocklists")
@guarded
def check_blocklists(
    ip: Annotated[list[str] | None, typer.Option("--ip", help="Check this IP (repeatable) "
                                                 "[default: every egress IP].")] = None,
    domain: Annotated[list[str] | None, typer.Option(
        "--domain", help="Check this domain (repeatable) [default: every tenant domain].")]
    = None,
    only: Annotated[list[str] | None, typer.Option(
        "--list", help="Only this list (repeatable) [default: every configured list].")]
    = None,
    nameserver: NameserverOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check egress IPs and tenant domains against the configured DNS blocklists."""
    from poolwarden.config.load import load_config
    from poolwarden.core.blocklists import ListKind, Status
    from poolwarden.services.monitors.checks import Target, blocklist_round
    from poolwarden.services.monitors.targets import (
        domain_targets,
        ip_targets,
        lists_of,
        resolver_for,
    )

    loaded = load_config(config_path(config))
    if ip or domain:
        targets = ([Target(a, ListKind.IP) for a in ip or ()]
                   + [Target(d.lower().rstrip("."), ListKind.DOMAIN) for d in domain or ()])
    else:
        targets = ip_targets(loaded) + domain_targets(loaded)
    lists = lists_of(loaded, tuple(only or ()))
    resolver = resolver_for(loaded, tuple(nameserver or ()))
    result = asyncio.run(blocklist_round(resolver, targets, lists,
                                         budget=loaded.settings.monitors.query_budget))
    listed = [f for f in result.findings if f.status is Status.LISTED]
    if json_out:
        _emit({"findings": [f.as_dict() for f in result.findings],
               "listed": len(listed), "unknown": result.errors(), "checked": result.checked,
               "skipped_over_budget": result.skipped, "lookups": result.lookups,
               "seconds": round(result.seconds, 3)})
    else:
        for f in result.findings:
            if f.status is not Status.CLEAR:
                out.print(f"{f.target:<30} {f.list:<16} {f.status.value.upper():<8} "
                          f"{' '.join(f.codes)} {f.meaning} {f.reason}".rstrip(),
                          markup=False, highlight=False)
        out.print(f"{result.checked} checks: {len(listed)} listed, {result.errors()} "
                  f"unknown, {result.skipped} over budget ({result.seconds:.2f} s)")
    if listed:
        raise typer.Exit(1)


@check_app.command("mx")
@guarded
def check_mx(
    domains: Annotated[list[str], typer.Argument(help="Recipient domains.")],
    nameserver: NameserverOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Which mailbox provider receives each domain's mail, by its MX records."""
    from poolwarden.config.load import load_config
    from poolwarden.core.providers import ProviderIndex
    from poolwarden.services.monitors.checks import resolve_mx
    from poolwarden.services.monitors.targets import resolver_for

    loaded = load_config(config_path(config))
    index = ProviderIndex(loaded.inventory.providers)
    resolver = resolver_for(loaded, tuple(nameserver or ()))
    answers = asyncio.run(resolve_mx(resolver, index, [d.lower() for d in domains]))
    rows = []
    for a in answers:
        provider, how = index.explain(a.verdict.domain, [a.verdict.host] if a.verdict.host
                                      else [])
        if a.verdict.provider != "other" or not a.ok:
            provider, how = a.verdict.provider, a.verdict.how
        rows.append({"domain": a.verdict.domain, "provider": provider, "mx": a.verdict.host,
                     "how": how, "ttl": a.ttl, "ok": a.ok})
    if json_out:
        _emit(rows)
        return
    for row in rows:
        out.print(f"{row['domain']:<30} {row['provider']:<12} {row['how']}", markup=False,
                  highlight=False)


def recognise(loaded: LoadedConfig, recipient: str, mx_hosts: tuple[str, ...]
              ) -> tuple[tuple[str, ...], str, str]:
    """``(mx hosts, provider, how)`` for a recipient: the provider tables first; else the
    MX hosts given, else the domain's MX looked up through the monitors' resolver (when one
    is configured), as monitord would learn it."""
    from poolwarden.core.providers import ProviderIndex
    from poolwarden.services.monitors.checks import resolve_mx
    from poolwarden.services.monitors.monitord import spec_of
    from poolwarden.services.monitors.targets import resolver_for

    index = ProviderIndex(loaded.inventory.providers)
    domain = recipient.rpartition("@")[2].lower().rstrip(".")
    provider, how = index.explain(domain, mx_hosts)
    if provider != "other" or mx_hosts or not domain or spec_of(loaded) is None:
        return mx_hosts, provider, how
    [answer] = asyncio.run(resolve_mx(resolver_for(loaded), index, [domain]))
    verdict = answer.verdict
    hosts = (verdict.host,) if verdict.host else ()
    return hosts, verdict.provider, verdict.how + " (looked up now; serve learns it by monitord)"


def blocklists(
    target: Annotated[str | None, typer.Option(help="Only this IP or domain.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """DNS blocklist listings in force and their history (as monitord stored them)."""
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config
    from poolwarden.services.queries import blocklists as read

    store = open_store(load_config(config_path(config)).store_url)
    try:
        found = (read.for_ip(store, target, limit=limit) if target is not None
                 else read.overview(store, limit=limit))
    finally:
        store.close()
    if json_out:
        _emit(found)
        return
    if not found["listed"]:
        out.print("nothing listed")
    for s in found["listed"]:
        out.print(f"LISTED {s['target']} on {s['list']}: {s['meaning']} {s['reason']}",
                  markup=False, highlight=False)
    for c in found["history"]:
        out.print(f"  {c['at']:.0f} {c['target']} {c['change']} on {c['list']}: "
                  f"{c['meaning']} -> {c['consequence']}", markup=False, highlight=False)
