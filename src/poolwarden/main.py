"""The composition root: the ``poolwarden`` command, wired whole.

``cli``, ``http`` and ``sim`` never import each other; this module alone puts them
together: the command line's commands (``cli.main``), plus ``serve`` (the routing agent
and its jobs from ``services.runtime`` with the HTTP app of ``http``) and ``demo`` (the
simulator of ``sim``, printed with the command line's renderers). Both import their
services when they run, so that every other command starts without them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from poolwarden.cli import render
from poolwarden.cli.common import ConfigOption, config_path, fail, guarded, out
from poolwarden.cli.main import app, engine_for

__all__ = ["app"]


@app.command()
@guarded
def demo(config: ConfigOption = None,
         days: Annotated[int, typer.Option(help="Days of simulated traffic.")] = 21,
         seed: Annotated[int, typer.Option(help="Random seed of the traffic.")] = 7) -> None:
    """Simulate traffic for the configured tenants, evaluate day by day, and show the result."""
    from poolwarden.services.queries import reports
    from poolwarden.services.reputation.engine import DAY
    from poolwarden.sim import demo as sim

    now = time.time()
    with engine_for(config) as (_, engine):
        out.rule("poolwarden demo")
        stories = sim.profile_stories(engine)
        out.print(f"{len(stories)} tenants, {days} simulated days ending today; profiles:")
        for name, plan, story in stories:
            out.print(f"  {render.escape(name)} ({plan}): {story}")
        for day in sim.simulate(engine, days=days, seed=seed, now=now):
            out.print(f"day {day.number:2d} ({render.when(day.day * DAY)[:10]}): "
                      f"{day.added:,} events stored, {day.duplicates:,} already there, "
                      f"{len(day.moves)} tier moves")
            for move in day.moves:
                render.move_line(out, reports.move_dict(move))
        snapshot = engine.snapshot(now)
        render.tenants_table(out, reports.tenant_rows(engine, snapshot, now))
        worst = sim.worst_shared_ip(engine, snapshot, now)
        if worst is not None:
            render.ip_detail(out, reports.ip_detail(engine, snapshot, worst, now))
        out.rule("sample routes (poolwarden route --tenant T --recipient ADDR)")
        for name, recipient, d in sim.sample_routes(engine, snapshot):
            out.print(f"  {render.escape(name):<14} → {recipient:<26} "
                      f"{d.action.value.upper():<6} {d.ip or '-':<12} {render.escape(d.reason)}")


@app.command()
@guarded
def serve(
    config: ConfigOption = None,
    policy: Annotated[list[str] | None, typer.Option(
        "--policy", help="Listen on tcp:HOST:PORT or unix:PATH (repeatable) [default: the "
        "policyd.listen setting].")] = None,
    follow: Annotated[list[Path] | None, typer.Option(
        "--follow", help="Follow this Postfix log file (repeatable) [default: the ingest.logs "
        "setting].")] = None,
    lmtp: Annotated[str | None, typer.Option(
        "--lmtp", help="Run the feedback LMTP listener on tcp:HOST:PORT (loopback) or "
        "unix:PATH [default: feedback.lmtp_listen when ingest.lmtp is true].")] = None,
    wait_for_log: Annotated[bool, typer.Option(
        "--wait-for-log", help="Start even when a followed log does not exist yet: wait for "
        "it, warning once a minute and raising an alert [default: refuse to start].")]
    = False,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
    http: Annotated[str, typer.Option(
        "--http", help="Serve the API, the dashboard and /metrics on HOST:PORT.")]
    = "127.0.0.1:8025",
    no_http: Annotated[bool, typer.Option("--no-http", help="Serve no HTTP.")] = False,
    http_allow_remote: Annotated[bool, typer.Option(
        "--http-allow-remote", help="Allow --http on a non-loopback address.")] = False,
) -> None:
    """Run the routing agent (and its background jobs: log ingestion and the feedback LMTP
    listener when configured) until SIGTERM; SIGHUP reloads."""
    import asyncio
    import logging

    from poolwarden.adapters.listeners import Listen
    from poolwarden.services.feedback.lmtpd import parse_listen
    from poolwarden.services.ingest.jobs import IngestOptions, missing_logs
    from poolwarden.services.runtime import Runtime

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        listens = [Listen.parse(text) for text in policy or ()]
        if lmtp is not None:
            parse_listen(lmtp)
    except ValueError as exc:
        fail(str(exc))
    if log_level.upper() != "DEBUG":  # aiosmtpd logs every LMTP command at INFO
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    ingest = IngestOptions(logs=tuple(map(str, follow)) if follow else None, lmtp_listen=lmtp,
                           wait_for_log=wait_for_log)
    runtime = Runtime(config_path(config), listens=listens or None, ingest=ingest)
    missing = missing_logs(runtime.ingest.paths)
    if missing and not wait_for_log:
        base = runtime.config.path.absolute().parent
        fail("followed log " + ", ".join(map(str, missing)) + " does not exist (relative "
             f"paths are resolved against {base}); fix the path, or start with "
             "--wait-for-log to wait for it")
    if no_http:
        asyncio.run(runtime.run())
        return
    from poolwarden.http.serve import parse_listen as parse_http
    from poolwarden.http.serve import run_with_http

    parse_http(http, allow_remote=http_allow_remote)  # a bad --http fails before starting
    asyncio.run(run_with_http(runtime, http, allow_remote=http_allow_remote))


def main() -> None:  # pragma: no cover - console entry point
    app()
