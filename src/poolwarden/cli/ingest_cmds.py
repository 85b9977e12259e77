"""``poolwarden ingest ...``: import outcomes from logs, feedback mail and trap feeds.

* ``ingest log FILE...``: Postfix log archives, plain or .gz (``services.ingest.ingestd``),
  oldest first, with a progress bar on a terminal; idempotent (the same file twice adds
  nothing); prints lines, deliveries, events added and what was not stored.
* ``ingest mail FILE|MAILDIR``: bounce and complaint mail (``services.feedback.intake``),
  one message file or a Maildir's ``cur/`` and ``new/``; prints how many messages were
  trusted, untrusted and rejected, and what was stored. A bad message never stops
  the next one.
* ``ingest dmarc FILE|DIR|MAILDIR``: DMARC aggregate reports (XML, .xml.gz, .zip, or mail
  with those attached; ``services.domains.dmarc_ingest``), each stored once and joined to
  tenants and egress IPs; prints stored, duplicate, rejected (with reasons) and skipped.
* ``ingest traps FILE``: a vendor spam-trap feed, CSV or JSON lines
  (``services.feedback.traps``); all or nothing, with the line number of the first bad line.
* ``ingest lmtp``: the feedback LMTP listener Postfix delivers bounces and FBL mail to
  (``services.feedback.lmtpd``), until SIGTERM or SIGINT.

Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from poolwarden.cli.common import ConfigOption, config_path, err, fail, out
from poolwarden.core.errors import PoolwardenError

if TYPE_CHECKING:
    from poolwarden.services.reputation.engine import Engine

ingest_app = typer.Typer(no_args_is_help=True,
                         help="Import outcomes: logs, feedback mail, trap feeds.")

EvaluateOption = Annotated[bool, typer.Option(help="Evaluate tiers after importing.")]
SHOWN_PROBLEMS = 20  # unattributed trap lines / unreadable files listed one by one


def _safe(text: str) -> str:
    """Printable text only (file names and reasons may come from mail)."""
    return escape("".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                          for ch in text))


@contextmanager
def _engine(option: Path | None) -> Iterator[Engine]:
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config
    from poolwarden.services.reputation.engine import Engine

    config = load_config(config_path(option))
    store = open_store(config.store_url)
    try:
        yield Engine(config, store, now=time.time())
    finally:
        store.close()


@ingest_app.command("log")
def ingest_log(
    files: Annotated[list[Path], typer.Argument(help="Postfix log files, plain or .gz "
                                                "(read oldest first, by modification time).")],
    config: ConfigOption = None,
    evaluate: EvaluateOption = True,
    log_level: Annotated[str, typer.Option(
        help="Logging level (WARNING lists unknown senders).")] = "ERROR",
) -> None:
    """Import Postfix log archives once (plain or .gz); importing twice adds nothing, and
    what was imported before (renamed or gzipped too) is not read again."""
    import contextlib
    import logging

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from poolwarden.services.ingest.log_import import import_logs
    from poolwarden.services.reputation.reaction import ReactionService

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    for file in files:
        if not file.is_file():
            fail(f"{file}: no such file")
    bar = (Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    console=err, transient=True) if err.is_terminal else None)
    try:
        with _engine(config) as engine, bar or contextlib.nullcontext():
            advance = None
            if bar is not None:
                task = bar.add_task("reading logs", total=sum(f.stat().st_size for f in files))
                advance = functools.partial(bar.advance, task)
            now = time.time()
            # reaction rules see the replies too; what ended before now is not stored
            reactions = ReactionService(engine.config, engine.store)
            # the engine is fed each batch's counter deltas, so evaluating needs no re-read
            result = import_logs(engine.config, engine.store, files, progress=advance,
                                 snapshot=engine.snapshot(now), pipelined=True,
                                 store_process=True, on_batch=reactions.on_batch,
                                 on_added=lambda added: engine.feed(added.deltas))
            moves = []
            if evaluate and result.metrics.events_stored:
                engine.prune(time.time())
                moves = engine.evaluate(time.time())
    except PoolwardenError as exc:
        fail(str(exc))
    m = result.metrics
    out.print(f"{result.files} files, {m.lines_read} lines: {m.deliveries} deliveries; "
              f"{m.events_stored} events added, {m.duplicates} already stored; "
              f"{m.unknown_tenants} of no known tenant and {m.skipped} skipped (not stored)")
    if result.known_files:
        out.print(f"{result.known_files} file(s) imported before: "
                  f"{result.skipped_bytes:,} bytes already stored were not read again")
    if result.unterminated:
        err.print(f"[yellow]warning:[/] {result.unterminated} file(s) end without a newline: "
                  "the unfinished last line was not imported")
    for move in moves:
        out.print(f"{escape(move.tenant)}: {move.before.value} -> {move.after.value} "
                  f"({escape(move.rule)})")


@ingest_app.command("mail")
def ingest_mail(
    path: Annotated[Path, typer.Argument(help="One message file, or a Maildir (cur/, new/).")],
    config: ConfigOption = None,
    evaluate: EvaluateOption = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import bounce and complaint mail; prints trusted, untrusted and rejected counts."""
    from poolwarden.services.feedback.intake import FeedbackService
    from poolwarden.services.feedback.mailfiles import ingest_files, is_maildir, mail_files
    from poolwarden.services.feedback.settings import feedback_settings

    if not path.exists():
        fail(f"{path}: no such file or directory")
    if path.is_dir() and not is_maildir(path):
        fail(f"{path}: a directory that is not a Maildir (no cur/ or new/)")
    try:
        with _engine(config) as engine:
            service = FeedbackService(engine, feedback_settings(engine.config))
            if not service.settings.secrets:
                err.print("[yellow]warning:[/] no VERP secret configured "
                          "(feedback.verp_secrets): every bounce is untrusted")
            summary = ingest_files(service, mail_files(path))
            moves = engine.evaluate(time.time()) if evaluate and summary.events_added else []
    except PoolwardenError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({
            "messages": summary.messages, "trusted": summary.trusted,
            "untrusted": summary.untrusted, "rejected": summary.rejected,
            "unreadable": [{"file": f, "error": e} for f, e in summary.unreadable],
            "rows_added": summary.rows_added, "events_added": summary.events_added,
            "moves": [{"tenant": m.tenant, "before": m.before.value, "after": m.after.value,
                       "rule": m.rule} for m in moves],
        }) + "\n")
        return
    out.print(f"{summary.messages} messages: {summary.trusted} trusted, "
              f"{summary.untrusted} untrusted, {summary.rejected} rejected; "
              f"{summary.rows_added} feedback rows and {summary.events_added} events added")
    for name, why in summary.unreadable[:SHOWN_PROBLEMS]:
        err.print(f"[yellow]unreadable:[/] {_safe(name)}: {_safe(why)}")
    if len(summary.unreadable) > SHOWN_PROBLEMS:
        err.print(f"... and {len(summary.unreadable) - SHOWN_PROBLEMS} more unreadable files")
    for move in moves:
        out.print(f"{escape(move.tenant)}: {move.before.value} -> {move.after.value} "
                  f"({escape(move.rule)})")


@ingest_app.command("dmarc")
def ingest_dmarc(
    path: Annotated[Path, typer.Argument(help="A report file (.xml, .xml.gz, .zip, or a "
                                         "mail), a directory of them, or a Maildir.")],
    config: ConfigOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import DMARC aggregate reports; a bad report never stops the next one."""
    from poolwarden.services.domains.dmarc_ingest import (
        DmarcIngest,
        caps_of,
        ingest_paths,
        input_files,
    )

    if not path.exists():
        fail(f"{path}: no such file or directory")
    try:
        with _engine(config) as engine:
            ingest = DmarcIngest(engine.store, engine.config.inventory,
                                 caps=caps_of(engine.config.settings.dmarc))
            summary = ingest_paths(ingest, input_files(path))
    except PoolwardenError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({
            "inputs": summary.inputs,
            **{status: summary.count(status)
               for status in ("stored", "duplicate", "rejected", "skipped")},
            "reports": [{"source": o.source, "status": o.status, "reason": o.reason,
                         "key": o.key, "records": o.records, "messages": o.messages,
                         "warnings": list(o.warnings)} for o in summary.outcomes],
            "unreadable": [{"file": f, "error": e} for f, e in summary.unreadable],
        }) + "\n")
        return
    out.print(f"{summary.inputs} inputs: {summary.count('stored')} reports stored, "
              f"{summary.count('duplicate')} already stored, {summary.count('rejected')} "
              f"rejected, {summary.count('skipped')} not aggregate reports")
    shown = [o for o in summary.outcomes if o.status == "rejected" or o.warnings]
    for o in shown[:SHOWN_PROBLEMS]:
        if o.status == "rejected":
            err.print(f"[yellow]rejected:[/] {_safe(o.source)}: {_safe(o.reason)}")
        else:
            err.print(f"[yellow]warnings:[/] {_safe(o.source)}: "
                      f"{_safe('; '.join(o.warnings))}")
    if len(shown) > SHOWN_PROBLEMS:
        err.print(f"... and {len(shown) - SHOWN_PROBLEMS} more")
    for name, why in summary.unreadable[:SHOWN_PROBLEMS]:
        err.print(f"[yellow]unreadable:[/] {_safe(name)}: {_safe(why)}")


@ingest_app.command("traps")
def ingest_traps(
    file: Annotated[Path, typer.Argument(help="Trap feed: CSV or JSON lines (time, trap "
                                         "address, sending IP, sender domain, message id).")],
    config: ConfigOption = None,
    evaluate: EvaluateOption = True,
) -> None:
    """Import a vendor spam-trap feed as trap-hit events; all or nothing."""
    from poolwarden.services.feedback.traps import import_trap_feed

    try:
        with _engine(config) as engine:
            result = import_trap_feed(engine, file, now=time.time(), evaluate=evaluate)
    except PoolwardenError as exc:
        fail(str(exc))
    out.print(f"{result.lines} lines: {result.added} trap hits added, "
              f"{result.duplicates} already stored, {len(result.unattributed)} not attributed "
              "to any tenant (not stored)")
    for line, why in result.unattributed[:SHOWN_PROBLEMS]:
        out.print(f"  line {line}: {_safe(why)}")
    if len(result.unattributed) > SHOWN_PROBLEMS:
        out.print(f"  ... and {len(result.unattributed) - SHOWN_PROBLEMS} more")
    for move in result.moves:
        out.print(f"{escape(move.tenant)}: {move.before.value} -> {move.after.value} "
                  f"({escape(move.rule)})")


@ingest_app.command("lmtp")
def ingest_lmtp(
    config: ConfigOption = None,
    listen: Annotated[str | None, typer.Option(
        help="tcp:HOST:PORT (loopback) or unix:PATH [default: the feedback.lmtp_listen "
        "setting].")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the feedback LMTP listener that Postfix delivers bounce and FBL mail to."""
    import asyncio
    import logging
    import signal

    from poolwarden.services.domains.dmarc_ingest import dmarc_mailbox
    from poolwarden.services.feedback.intake import FeedbackService
    from poolwarden.services.feedback.lmtpd import LmtpServer, parse_listen
    from poolwarden.services.feedback.settings import feedback_settings

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if log_level.upper() != "DEBUG":  # aiosmtpd logs every command at INFO
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    async def run(engine: Engine) -> None:
        settings = feedback_settings(engine.config)
        where = parse_listen(listen or engine.config.settings.feedback.lmtp_listen)
        server = LmtpServer(FeedbackService(engine, settings),
                            max_message_bytes=settings.max_message_bytes,
                            reports=dmarc_mailbox(engine.store, engine.config))
        await server.start([where])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        with _engine(config) as engine:
            asyncio.run(run(engine))
    except (PoolwardenError, ValueError, OSError) as exc:
        fail(str(exc))
