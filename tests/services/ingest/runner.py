"""A standalone ingester process for the crash tests: follows one log until it is killed.

    python -m tests.services.ingest.runner --config pw.toml --log mail.log \
        [--crash-point P --crash-at N]

With ``--crash-point`` it dies by ``os._exit(137)`` (no cleanup, no commit: what kill -9
leaves) the N-th time it reaches the point: ``read`` (a chunk was read), ``parsed`` (the
batch is mapped, before the transaction), ``transaction`` (inside it: the events are
written, the checkpoint statement is about to run), ``committed`` (after the commit,
before the ingester updates what it holds in memory) or ``updated`` (after that).
With ``--no-autocheckpoint`` (SQLite) the WAL keeps every commit, so a copy of the
database files with the WAL cut short is what a power loss leaves. Prints ``ready``
once started.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from sqlalchemy import event

from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import load_config
from poolwarden.services.ingest.ingestd import Ingestd


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--poll", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=300)
    ap.add_argument("--chunk", type=int, default=16 * 1024)
    ap.add_argument("--crash-point")
    ap.add_argument("--crash-at", type=int, default=1)
    ap.add_argument("--once", action="store_true", help="run_once, then exit 0")
    ap.add_argument("--no-autocheckpoint", action="store_true",
                    help="SQLite: keep every commit in the WAL (power-loss test)")
    args = ap.parse_args()

    config = load_config(args.config)
    store = open_store(config.store_url)
    seen = {"n": 0}
    if args.no_autocheckpoint:
        assert isinstance(store, SqlStore)

        def no_checkpoints(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA wal_autocheckpoint = 0")

        event.listen(store.engine, "connect", no_checkpoints)
        store.engine.dispose()  # connections opened before get it too

    def reached(point: str) -> None:
        if point == args.crash_point:
            seen["n"] += 1
            if seen["n"] == args.crash_at:
                sys.stdout.flush()
                os._exit(137)

    if args.crash_point == "transaction":
        assert isinstance(store, SqlStore)

        def before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if "checkpoints" in statement and statement.lstrip().upper().startswith("INSERT"):
                reached("transaction")

        event.listen(store.engine, "before_cursor_execute", before)
    ingestd = Ingestd(config, store, [args.log], batch_lines=args.batch, chunk_bytes=args.chunk,
                      rotate_wait=0.05, hook=reached if args.crash_point else None)
    print("ready", flush=True)
    if args.once:
        ingestd.run_once()
        ingestd.close()
        store.close()
        return 0
    while True:
        ingestd.run_once()
        time.sleep(args.poll)


if __name__ == "__main__":
    raise SystemExit(main())
