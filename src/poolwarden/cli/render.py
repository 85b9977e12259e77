"""Rich renderings of decisions, tenants, IPs, moves and settings for the terminal.

Presentation only. Every tenant-controlled string goes through ``escape`` so
Rich markup, control characters and ANSI escapes in names print as text.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

if TYPE_CHECKING:
    from poolwarden.core.snapshot import Decision

_CONTROL = {i: f"\\x{i:02x}" for i in range(32) if i not in (9,)} | {127: "\\x7f"}


def escape(text: object) -> str:
    return rich_escape(str(text).translate(_CONTROL))


def when(epoch: float) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def rate_cell(rate: dict[str, Any]) -> str:
    if not rate["sufficient"]:
        return f"[dim]n/a ({rate['count']}/{rate['sample']})[/]"
    return f"{rate['value']:.2%} ({rate['count']}/{rate['sample']})"


def decision(out: Console, d: Decision) -> None:
    target = d.ip or "-"
    out.print(f"[bold]{d.action.value.upper()}[/] {escape(target)}  pool={escape(d.pool or '-')}"
              f"  provider={escape(d.provider or '-')}")
    out.print(f"  rule:   {escape(d.rule)}")
    out.print(f"  reason: {escape(d.reason)}")


def tenants_table(out: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="tenants", show_lines=False)
    for column in ("tenant", "plan", "tier", "pool", "volume", "hard bounce", "complaints",
                   "traps", "deferred", "advice"):
        table.add_column(column)
    for r in rows:
        tier = r["tier"] + (" (pinned)" if r["pinned"] else "")
        table.add_row(escape(r["name"]), r["plan"], tier, escape(r["pool"]), f"{r['volume']:,}",
                      rate_cell(r["hard_bounce_rate"]), rate_cell(r["complaint_rate"]),
                      str(r["trap_hits"]), rate_cell(r["deferral_rate"]),
                      "dedicated" if r["advice"]["advised"] else "shared")
    out.print(table)
    if rows:
        out.print(f"[dim]rates over the last {rows[0]['window_days']} days; n/a = below the "
                  "evidence floor (insufficient data)[/]")


def move_line(out: Console, m: dict[str, Any]) -> None:
    pin = " [pinned]" if m["pinned"] else ""
    out.print(f"{when(m['at'])}  {escape(m['tenant'])}: {m['before']} → {m['after']}{pin}  "
              f"rule={escape(m['rule'])} by {escape(m['actor'])} ({escape(m['source'])})")
    out.print(f"    {escape(m['reason'])}")


def _metrics_lines(out: Console, label: str, metrics: dict[str, Any]) -> None:
    out.print(f"  {label}: volume {metrics['volume']:,}, delivered {metrics['delivered']:,}, "
              f"trap hits {metrics['trap_hits']}")
    for key in ("hard_bounce_rate", "complaint_rate", "deferral_rate"):
        r = metrics[key]
        state = ("" if r["sufficient"]
                 else f"  [yellow]insufficient data (floor {r['floor']})[/]")
        out.print(f"    {key.replace('_', ' ')}: {r['value']:.3%} ({r['count']}/{r['sample']}, "
                  f"95% CI {r['low']:.3%}–{r['high']:.3%}){state}")


def tenant_detail(out: Console, d: dict[str, Any]) -> None:
    pin = f" (pinned by {escape(d['pinned_by'])}: {escape(d['pinned_why'])})" if d["pinned"] \
        else ""
    out.print(f"[bold]{escape(d['name'])}[/]  plan {d['plan']}  tier [bold]{d['tier']}[/]{pin}"
              f"  since {when(d['since'])}")
    for label, text in d["routes"].items():
        out.print(f"  route ({label}): {escape(text)}")
    _metrics_lines(out, f"last {d['window']['window_days']} days", d["window"])
    _metrics_lines(out, f"last {d['proof_window']['window_days']} days", d["proof_window"])
    for provider, metrics in d["per_provider"].items():
        _metrics_lines(out, f"{escape(provider)}, last {metrics['window_days']} days", metrics)
    advice = d["advice"]
    out.print(f"  advice: [bold]{advice['label']}[/]")
    for reason in advice["reasons"]:
        out.print(f"    - {escape(reason)}")
    out.print("  moves (newest first):" if d["moves"] else "  moves: none")
    for move in d["moves"]:
        move_line(out, move)


def ips_table(out: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="egress IPs")
    for column in ("address", "helo", "state", "pools", "dedicated to", "listed", "volume",
                   "hard bounce", "complaints", "traps"):
        table.add_column(column)
    for r in rows:
        state = r["state"] + (" BLOCKLISTED" if r["blocklisted"] else "")
        table.add_row(r["address"], escape(r["helo"]), state, escape(", ".join(r["pools"])),
                      escape(r["dedicated_to"] or "-"), escape(r.get("listed_on") or "-"),
                      f"{r['volume']:,}", rate_cell(r["hard_bounce_rate"]),
                      rate_cell(r["complaint_rate"]), str(r["trap_hits"]))
    out.print(table)


def listings(out: Console, found: dict[str, Any] | None) -> None:
    """Blocklist listings in force and their history (IP and tenant pages)."""
    if not found or not (found["listed"] or found["history"]):
        return
    for s in found["listed"]:
        out.print(f"[bold red]LISTED[/] {escape(s['target'])} on {escape(s['list'])} since "
                  f"{when(s['since'])}: {escape(s['meaning'])} {escape(s['reason'])}")
    for c in found["history"][:20]:
        out.print(f"  {when(c['at'])} {escape(c['target'])} {c['change']} on "
                  f"{escape(c['list'])}: {escape(c['meaning'])} → {escape(c['consequence'])}")


def ip_detail(out: Console, d: dict[str, Any]) -> None:
    out.print(f"[bold]{d['address']}[/]  helo {escape(d['helo'])}  state {d['state']}"
              f"{'  BLOCKLISTED' if d['blocklisted'] else ''}  pools "
              f"{escape(', '.join(d['pools']) or '-')}")
    _metrics_lines(out, f"last {d['window']['window_days']} days", d["window"])
    for provider, metrics in d["per_provider"].items():
        _metrics_lines(out, escape(provider), metrics)
    if d.get("warmup"):
        warmup(out, d["warmup"])
    table = Table(title="bad-neighbour ranking (share of this IP's bad signals)")
    for column in ("tenant", "volume", "hard bounces", "complaints", "trap hits", "harm"):
        table.add_column(column)
    for n in d["neighbours"]:
        table.add_row(escape(n["tenant"]), f"{n['volume']:,}",
                      f"{n['hard_bounces']} ({n['bounce_share']:.0%})",
                      f"{n['complaints']} ({n['complaint_share']:.0%})",
                      f"{n['trap_hits']} ({n['trap_share']:.0%})", f"{n['harm']:.2f}")
    out.print(table)


def warmup(out: Console, w: dict[str, Any]) -> None:
    """An IP's warm-up: stage, today's cap and count per provider, and why."""
    table = Table(title=f"warm-up: schedule '{escape(w['schedule'])}', day {w['day']}, "
                  f"stage {w['stage']} of {w['stages_total']} (advances after a day that "
                  f"delivered > {w['advance_fraction']:.0%} of its cap)")
    for column in ("provider", "stage", "cap today", "sent today", "why"):
        table.add_column(column)
    for provider, cap in w["caps"].items():
        table.add_row(escape(provider), str(w["stages"][provider]),
                      "no cap" if cap is None else f"{cap:,}", f"{w['counts'][provider]:,}",
                      escape(w["why"][provider]))
    out.print(table)


def settings_table(out: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="settings")
    for column in ("setting", "type", "default", "help"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], escape(r["type"]), escape(r["default"]), escape(r["help"]))
    out.print(table)


def reactions(out: Console, rows: list[dict[str, Any]]) -> None:
    """Reaction-rule activations (``services.queries.reaction_report``): effect now, why, lines."""
    if not rows:
        out.print("reaction rules: [dim]no activation[/]")
        return
    out.print(f"reaction rules: {len(rows)} activation(s), newest first")
    for r in rows:
        scope = (f"{r['ip']}→{r['provider']}" if r["scope"] == "ip"
                 else f"tenant {r['tenant']}→{r['provider']}")
        state = r["phase"] + (f", now {r['effect_now']}" if r["effect_now"] else "")
        style = "bold yellow" if r["in_force"] else "dim"
        out.print(f"  [{style}]#{r['id']} {escape(r['rule'])}[/] {escape(r['action'])} "
                  f"{escape(scope)}: {escape(state)}; {when(r['started_at'])} → "
                  f"{when(r['until'])}, ramp ends {when(r['ends_at'])}")
        out.print(f"    {escape(r['why'])}", highlight=False)
        for line in r["lines"][-5:]:
            out.print(f"    [dim]{escape(line)}[/]", highlight=False)
