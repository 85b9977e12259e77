"""Benchmark: the store part of the log ingest alone (rows in, events and counters stored).

Generates ``bench_logparse``'s log, runs the ingest over it once to capture the batches of
event rows it hands to the store (``SqlStore.add_event_rows_at``), then replays exactly
those batches into a fresh SQLite file in this process and times them: CPU seconds and
wall seconds of the store calls only (no parsing, no mapping). Then the same batches
again (every key stored already: the duplicates path) and a mix (half of each batch
new). The figure to compare across changes is "all new: CPU s" per event count.
Usage: python bench/bench_store.py [--lines N] [--seed N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any

from bench_ingest_synthetic import config_text
from bench_logparse import generate
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import load_config_text
from poolwarden.services.ingest.ingestd import Ingestd


def capture(path: str, url: str) -> list[list[Any]]:
    """The row batches one ingest of ``path`` stores, in order."""
    store = open_store(url)
    assert isinstance(store, SqlStore)
    batches: list[list[Any]] = []
    original = store.add_event_rows_at

    def recording(rows: Any, checkpoint: Any) -> Any:
        rows = list(rows)
        batches.append(rows)
        return original(rows, checkpoint)

    store.add_event_rows_at = recording  # type: ignore[method-assign]
    ingestd = Ingestd(load_config_text(config_text(url), file="bench.toml"), store, [path],
                      rotate_wait=0.0)
    ingestd.run_once()
    ingestd.close()
    store.close()
    return batches


def _count(stored: Any) -> int:
    """Rows newly stored, whether the store answers with a list (before the store reported
    deltas) or with ``StoredRows``: the same script measures both."""
    return len(stored) if isinstance(stored, list) else len(stored.added)


def replay(url: str, batches: list[list[Any]]) -> tuple[float, float, int]:
    """(CPU s, wall s, events added) of storing ``batches`` with ``add_event_rows_at``."""
    store = open_store(url)
    cpu, wall = time.process_time(), time.perf_counter()
    added = sum(_count(store.add_event_rows_at(rows, None)) for rows in batches)
    out = time.process_time() - cpu, time.perf_counter() - wall, added
    store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="fresh databases to time")
    args = ap.parse_args()
    tmpdir = tempfile.mkdtemp(prefix="pw-storebench-")
    try:
        path = os.path.join(tmpdir, "mail.log")
        generate(path, args.lines, args.seed)
        batches = capture(path, f"sqlite:///{os.path.join(tmpdir, 'capture.db')}")
        events = sum(map(len, batches))
        print(f"{events:,} event rows in {len(batches)} batches")
        best: tuple[float, float, int] | None = None
        for n in range(args.repeat):
            url = f"sqlite:///{os.path.join(tmpdir, f'fresh{n}.db')}"
            first = replay(url, batches)
            best = first if best is None or first[0] < best[0] else best
            again = replay(url, batches)
            print(f"  run {n}: all new {first[0]:.2f} CPU s / {first[1]:.2f} s wall "
                  f"({first[2]:,} added); all stored already {again[0]:.2f} CPU s / "
                  f"{again[1]:.2f} s ({again[2]} added)")
        url = f"sqlite:///{os.path.join(tmpdir, 'half.db')}"
        replay(url, [rows[::2] for rows in batches])
        half = replay(url, batches)
        print(f"  half new: {half[0]:.2f} CPU s / {half[1]:.2f} s wall ({half[2]:,} added)")
        assert best is not None
        print(f"store part, all new (best of {args.repeat}): {best[0]:.2f} CPU s for "
              f"{best[2]:,} events ({best[2] / best[0]:,.0f} events per CPU-second)")
    finally:
        shutil.rmtree(tmpdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
