"""Benchmark: a generated (synthetic) Postfix log ingested in process vs pflogsumm and a regex.

Generates the 1,000,000-line log of ``bench_logparse`` (2,000 tenants that authenticate as
``t<N>``, 41 egress transports, deferrals, expiries, bounces, noise) and, in the same run
over the same file:

* ``floor``: a bare Python regex pass (header + ``status=``): the least any reader does;
* ``poolwarden ingest``: ``Ingestd.run_once`` into a fresh SQLite file: read, parse,
  correlate, map to tenant / IP / provider / kind / reason, store events and day
  counters with the read position in the same transactions (exactly once);
* ``pflogsumm`` (Debian package, /usr/sbin/pflogsumm), which only parses and sums;
* for reference, parse + correlate alone (no mapping, no store): the ingest's own loop
  (``Pipeline.feed``: ``Correlator.feed_lines``) over the same chunks the tailer reads,
  the ceiling the full ingest cannot pass; and ``bench_logparse``'s line-by-line
  ``LogParser.parse`` + ``Correlator.feed`` (the general API, same results).

Then checks the result: every delivery of a known tenant stored once (counts by status
equal the generator's ground truth), and a second run over the same file adds nothing.
Prints lines/s and the ratios; the issue's target is the full ingest >= 3x pflogsumm.
``--mode process`` (the default, as ``serve`` and ``poolwarden ingest log`` run it): the
batches are stored by a child process (``services.ingest.store_worker``) while the next is parsed;
it is started before the clock starts, as a long-running ingester starts it once, and its
start-up time is printed. ``--mode thread``: the store on a second thread of the same
process (both take turns for the GIL); ``--mode serial``: store each batch before parsing
the next. The CPU time of the full ingest (all its threads and the worker) and of pflogsumm
are printed too: lines per CPU-second is the per-core figure, which a busy machine distorts
less than the wall clock. Usage:
python bench/bench_ingest_synthetic.py [--lines N] [--batch N] [--mode M] [--keep] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter

from sqlalchemy import func, select

from bench_logparse import (
    EGRESS,
    PFLOGSUMM,
    generate,
    run_floor,
    run_pflogsumm,
    run_poolwarden,
)
from poolwarden.adapters import schema
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.adapters.tailer import CHUNK_BYTES
from poolwarden.config.load import load_config_text
from poolwarden.services.ingest.ingestd import BATCH_LINES, Ingestd
from poolwarden.services.ingest.pipeline import Pipeline, gc_paused
from poolwarden.wire.postfix_log import LogParser, egress_ip_of

TENANTS = 2000
MODES = {"process": "a child process stores while the next batch is parsed",
         "thread": "a 2nd thread of the same process stores while the next is parsed",
         "serial": "each batch stored before the next is parsed"}


def config_text(url: str) -> str:
    ips = sorted({ip for ip in map(egress_ip_of, EGRESS) if ip is not None})
    parts = [f'[store]\nurl = "{url}"\n']
    parts += [f'[[ips]]\naddress = "{ip}"\nhelo = "m{n}.example.net"\n'
              for n, ip in enumerate(ips)]
    half = len(ips) // 2
    parts.append('[[pools]]\nname = "good"\nkind = "shared"\ntiers = ["good"]\n'
                 f"ips = {ips[:half]!r}\n".replace("'", '"'))
    parts.append('[[pools]]\nname = "new"\nkind = "shared"\ntiers = ["new", "risky"]\n'
                 f"ips = {ips[half:]!r}\n".replace("'", '"'))
    parts += [f'[[tenants]]\nname = "t{n}"\nplan = "shared"\ndomains = ["t{n}.example"]\n'
              f'sasl_usernames = ["t{n}"]\n' for n in range(TENANTS)]
    return "\n".join(parts)


def run_ingest(path: str, url: str, batch: int, mode: str
               ) -> tuple[float, float, float, Ingestd]:
    """(wall seconds, CPU seconds of the processes, worker start seconds, the ingester) of
    one full ingest. ``mode``: serial, thread (the store on a 2nd thread) or process (the
    store in a child process: serve's and ``poolwarden ingest log``'s way)."""
    store = open_store(url)
    started = time.perf_counter()
    ingestd = Ingestd(load_config_text(config_text(url), file="bench.toml"), store, [path],
                      batch_lines=batch, rotate_wait=0.0, pipelined=mode != "serial",
                      store_process=mode == "process")
    ingestd.wait_ready()  # a long-running ingester starts its worker once
    ready = time.perf_counter() - started
    cpu = time.process_time() + ingestd.worker_cpu_seconds()
    start = time.perf_counter()
    ingestd.run_once()
    wall = time.perf_counter() - start
    return wall, time.process_time() + ingestd.worker_cpu_seconds() - cpu, ready, ingestd


def run_pipeline(path: str) -> float:
    """Parse + correlate with the ingest's own loop, over tailer-sized chunks."""
    pipeline = Pipeline(LogParser(year=2026))
    start = time.perf_counter()
    with open(path, "rb") as f, gc_paused():
        offset, carry = 0, b""
        while block := f.read(CHUNK_BYTES):
            data = carry + block
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            pipeline.feed(1, offset, data[:cut], emit=True)
            offset += cut
            pipeline.take()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=BATCH_LINES, help="lines per transaction")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the log and the database")
    ap.add_argument("--mode", choices=("process", "thread", "serial"), default="process",
                    help="where batches are stored (see the docstring)")
    args = ap.parse_args()

    tmpdir = tempfile.mkdtemp(prefix="pw-ingestbench-")
    path = os.path.join(tmpdir, "mail.log")
    url = f"sqlite:///{os.path.join(tmpdir, 'pw.db')}"
    try:
        start = time.perf_counter()
        written, expected = generate(path, args.lines, args.seed)
        print(f"generated {written:,} lines ({os.path.getsize(path) / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s: {path}")
        floor_s, n, _ = run_floor(path)
        wire_s = run_pipeline(path)  # parse + correlate only: the ceiling
        generic_s = run_poolwarden(path)[0]
        ours_s, ours_cpu, ready_s, ingestd = run_ingest(path, url, args.batch, args.mode)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        pfl_s = run_pflogsumm(path) if os.path.exists(PFLOGSUMM) else None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        pfl_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)

        m = ingestd.metrics.as_dict()
        store = ingestd.store
        assert isinstance(store, SqlStore)
        with store.engine.connect() as conn:
            kinds = Counter({kind: n for kind, n in conn.execute(
                select(schema.events.c.kind, func.count()).group_by(schema.events.c.kind))})
        again = time.perf_counter()
        ingestd.run_once()  # nothing new: the checkpoint is at the end
        again_s = time.perf_counter() - again
        added_again = ingestd.metrics.events_stored - m["events_stored"]
        shutil.copyfile(path, path + ".copy")
        second = Ingestd(load_config_text(config_text(url), file="bench.toml"), store,
                         [path + ".copy"], batch_lines=args.batch, rotate_wait=0.0)
        second.run_once()  # the same lines under another name: every key exists already
        ingestd.close()
        second.close()
        store.close()
    finally:
        if not args.keep:
            shutil.rmtree(tmpdir)

    def rate(seconds: float) -> str:
        return f"{n / seconds:>12,.0f} lines/s  ({seconds:6.2f} s)"

    print(f"{n:,} lines, Python {sys.version.split()[0]}, batch {args.batch} lines, "
          f"store: {MODES[args.mode]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    if args.mode == "process":
        print(f"  (the store worker started in {ready_s:.2f} s, before the clock)")
    print(f"  floor (bare regex pass)        {rate(floor_s)}")
    print(f"  poolwarden parse+correlate     {rate(wire_s)}  (the ingest's loop: the ceiling)")
    print(f"    line by line parse()+feed()  {rate(generic_s)}  (the general API)")
    print(f"  poolwarden full ingest         {rate(ours_s)}")
    print(f"    per CPU-second (per core)    {rate(ours_cpu)}  (CPU time of all its work)")
    if pfl_s is not None:
        print(f"  pflogsumm                      {rate(pfl_s)}")
        print(f"    per CPU-second               {rate(pfl_cpu)}")
    print(f"stored {m['events_stored']:,} events in {m['commits']} transactions "
          f"({m['deliveries']:,} deliveries; {m['skipped']:,} skipped: Postfix's own "
          f"notifications; {m['unknown_tenants']:,} of unknown tenants)")
    print(f"  by kind {dict(sorted(kinds.items()))}")
    truth = {"delivered": expected.get("sent", 0), "deferred": expected.get("deferred", 0),
             "bounced": expected.get("bounced", 0) + expected.get("expired", 0)}
    got = {"delivered": kinds.get("delivered", 0), "deferred": kinds.get("deferred", 0),
           "bounced": kinds.get("hard_bounce", 0) + kinds.get("soft_bounce", 0)}
    notices = expected.get("sent", 0) - got["delivered"]  # notifications are generator "sent"
    print(f"  ground truth: {expected} (sent includes {notices:,} bounce notifications)")
    exact = (got["deferred"], got["bounced"]) == (truth["deferred"], truth["bounced"]) \
        and notices == m["skipped"] and m["unknown_tenants"] == 0
    print(f"  exactly once vs ground truth: {exact}; second run added {added_again} "
          f"({again_s:.2f} s); the same "
          f"file under another name added {second.metrics.events_stored} "
          f"({second.metrics.duplicates:,} duplicates)")
    print(f"full ingest runs at {floor_s / ours_s:.2f}x the floor's speed")
    if pfl_s is not None:
        print(f"full ingest is {pfl_s / ours_s:.2f}x pflogsumm (issue target: >= 3x), "
              f"{pfl_cpu / ours_cpu:.2f}x per CPU-second; parse+correlate alone is "
              f"{pfl_s / wire_s:.2f}x")
    ok = exact and added_again == 0 and second.metrics.events_stored == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
