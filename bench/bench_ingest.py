"""Benchmark: what a user waits for, ``poolwarden ingest log`` on a real Postfix log, vs pflogsumm.

The log is written by a real Postfix (``real_postfix_log.py``: the test lab driven by
``smtp-source``; generated once, then cached under /var/tmp/poolwarden-bench/). For each of
``--runs`` runs, in alternating order over the same file:

* ``poolwarden ingest log FILE -c CONFIG`` as a subprocess, into a fresh SQLite file, timed
  whole: interpreter start-up, imports, migrations, parse, correlate, map, store, and the
  final tier evaluation. CONFIG is the configuration the lab ran with (its tenants), with
  the store pointed at the fresh file;
* ``pflogsumm FILE > /dev/null`` (Debian's /usr/sbin/pflogsumm).

Each run is checked: the events stored by kind equal the same counts on the next run, the
delivered and deferred events equal the ``status=sent`` / ``status=deferred`` lines of
tenants' mail found by a plain two-pass scan of the log (queue id -> sender, then status
lines; Postfix's own notifications and senders of no tenant left out), and a second
``ingest log`` of the same file adds 0 events. That second import is timed too (a
per-content checkpoint makes it skip what is stored) and printed as a fraction of the
first; so are a renamed copy and a gzipped copy of the file, which must be recognised
(0 events added, "imported before"). Prints every run, the medians, lines/s, CPU seconds
(``getrusage(RUSAGE_CHILDREN)`` deltas: the command and its store worker) and the ratio
pflogsumm / poolwarden (target: >= 3). Exit status 1 when a check fails, 2 when no log
can be had. Usage:
python bench/bench_ingest.py [--lines N] [--runs N] [--max-seconds S] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from real_postfix_log import CONFIG_NAME, DEFAULTS, LOG_NAME, LabError, Params, ensure_log

PFLOGSUMM = "/usr/sbin/pflogsumm"
POOLWARDEN = str(Path(sys.executable).with_name("poolwarden"))
SUMMARY = re.compile(r"(\d+) files?, (\d+) lines: (\d+) deliveries; (\d+) events added, "
                     r"(\d+) already stored")


@dataclass(frozen=True, slots=True)
class Timed:
    wall: float
    cpu: float
    output: str


def timed(argv: list[str], *, stdout: int | None = subprocess.PIPE) -> Timed:
    """Run ``argv`` to the end: wall seconds, CPU seconds of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False,
                          env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Timed(wall, cpu, done.stdout or "")


def bench_config(lab_config: Path, db: Path, into: Path) -> Path:
    """The lab's configuration with its store in ``db`` (a fresh SQLite file)."""
    text = lab_config.read_text()
    text = re.sub(r"(?m)^url\s*=.*\n", "", text)  # the lab's own store, if it named one
    text = re.sub(r"(?m)^\[store\]\s*$", f'[store]\nurl = "sqlite:///{db}"', text, count=1)
    if f"sqlite:///{db}" not in text:
        text = f'[store]\nurl = "sqlite:///{db}"\n\n' + text
    into.write_text(text)
    return into


def ingest(log: Path, config: Path) -> tuple[Timed, dict[str, int]]:
    run = timed([POOLWARDEN, "ingest", "log", str(log), "-c", str(config)])
    match = SUMMARY.search(run.output)
    if match is None:
        raise RuntimeError(f"unexpected output of poolwarden ingest log: {run.output!r}")
    names = ("files", "lines", "deliveries", "added", "duplicates")
    return run, dict(zip(names, map(int, match.groups()), strict=True))


def events_by_kind(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        return Counter(dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind")))


def tenant_domains(config: Path) -> set[str]:
    from poolwarden.config.load import load_config

    return {d for t in load_config(config).inventory.tenants for d in t.domains}


def scan_truth(log: Path, domains: set[str]) -> Counter[str]:
    """``status=`` lines of tenants' mail by status, by a plain scan: queue id -> sender
    (qmgr's ``from=<...>``), then the recipients' status lines of those queue ids."""
    sender_re = re.compile(rb": ([0-9A-Za-z]+): from=<([^>]*)>, size=")
    status_re = re.compile(rb": ([0-9A-Za-z]+): to=<[^>]*>, .*? status=([a-z]+)")
    senders: dict[bytes, bytes] = {}
    counts: Counter[str] = Counter()
    with log.open("rb") as f:
        for line in f:
            if b" from=<" in line and (m := sender_re.search(line)):
                senders[m.group(1)] = m.group(2)
            elif b" status=" in line and (m := status_re.search(line)):
                sender = senders.get(m.group(1), b"")
                domain = sender.rpartition(b"@")[2].decode("ascii", "replace").lower()
                if sender and domain in domains:
                    counts[m.group(2).decode()] += 1
    return counts


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--lines", type=int, default=DEFAULTS.lines)
    ap.add_argument("--seed", type=int, default=DEFAULTS.seed)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=1800,
                    help="longest the log generation may run (only when not cached)")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    args = ap.parse_args()
    if not os.path.exists(PFLOGSUMM):
        print(f"error: {PFLOGSUMM} is missing (Debian package pflogsumm)", file=sys.stderr)
        return 2
    try:
        where, meta = ensure_log(Params(lines=args.lines, seed=args.seed),
                                 max_seconds=args.max_seconds)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log, lab_config = where / LOG_NAME, where / CONFIG_NAME
    size = log.stat().st_size
    lines = int(str(meta["lines"]))
    print(f"log: {log}: {lines:,} lines, {size / 1e6:.0f} MB, written by Postfix "
          f"{meta['postfix_version']} in {meta['seconds']} s "
          f"({meta['lines_per_second']:,} lines/s){'' if meta['complete'] else ' (CUT SHORT)'}")
    truth = scan_truth(log, tenant_domains(lab_config))
    print(f"  tenants' status= lines in the log (plain scan): {dict(sorted(truth.items()))}")

    tmp = Path(tempfile.mkdtemp(prefix="pw-bench-ingest-"))
    ours: list[Timed] = []
    theirs: list[Timed] = []
    agains: list[Timed] = []
    problems: list[str] = []
    kinds_seen: list[Counter[str]] = []
    try:
        for run in range(args.runs):
            db = tmp / f"run{run}.db"
            config = bench_config(lab_config, db, tmp / f"run{run}.toml")
            order = ("poolwarden", "pflogsumm") if run % 2 == 0 else ("pflogsumm", "poolwarden")
            for which in order:
                if which == "poolwarden":
                    first, summary = ingest(log, config)
                    ours.append(first)
                else:
                    theirs.append(timed([PFLOGSUMM, str(log)], stdout=subprocess.DEVNULL))
            again, repeat = ingest(log, config)
            agains.append(again)
            kinds = events_by_kind(db)
            kinds_seen.append(kinds)
            p, w = theirs[-1], ours[-1]
            print(f"run {run + 1} ({order[0]} first): poolwarden {w.wall:6.2f} s "
                  f"(CPU {w.cpu:6.2f} s)  pflogsumm {p.wall:6.2f} s (CPU {p.cpu:6.2f} s)  "
                  f"ratio {p.wall / w.wall:4.2f}x  | again {again.wall:5.2f} s "
                  f"({again.wall / w.wall:.1%}), added {repeat['added']}")
            print(f"    {summary['deliveries']:,} deliveries, {summary['added']:,} events "
                  f"stored: {dict(sorted(kinds.items()))}")
            if summary["lines"] != lines:
                problems.append(f"run {run + 1}: read {summary['lines']} of {lines} lines")
            if repeat["added"] != 0:
                problems.append(f"run {run + 1}: the second import added {repeat['added']}")
            if kinds_seen[0] != kinds:
                problems.append(f"run {run + 1}: events differ from run 1: {kinds}")
            for kind, status in (("delivered", "sent"), ("deferred", "deferred")):
                if kinds.get(kind, 0) != truth.get(status, 0):
                    problems.append(f"run {run + 1}: {kinds.get(kind, 0)} {kind} events, "
                                    f"{truth.get(status, 0)} status={status} lines")
            bounces = kinds.get("hard_bounce", 0) + kinds.get("soft_bounce", 0)
            if bounces < truth.get("bounced", 0):
                problems.append(f"run {run + 1}: {bounces} bounce events < "
                                f"{truth.get('bounced', 0)} status=bounced lines")
        # the same content under a rotated name and gzipped: recognised, nothing added
        rotated = tmp / "mail.log.1"
        shutil.copyfile(log, rotated)
        packed = tmp / "mail.log.2.gz"
        with log.open("rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        config = bench_config(lab_config, tmp / "run0.db", tmp / "copies.toml")
        copies = {}
        for name, copy in (("renamed copy", rotated), ("gzipped copy", packed)):
            run_copy, got = ingest(copy, config)
            copies[name] = run_copy.wall
            if got["added"] != 0 or "imported before" not in run_copy.output:
                problems.append(f"{name}: not recognised ({run_copy.output.strip()})")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    ours_s = median([r.wall for r in ours])
    theirs_s = median([r.wall for r in theirs])
    again_s = median([r.wall for r in agains])
    ours_cpu = median([r.cpu for r in ours])
    theirs_cpu = median([r.cpu for r in theirs])
    print(f"medians of {args.runs} runs, {lines:,} lines, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}:")
    print(f"  poolwarden ingest log  {ours_s:6.2f} s  {lines / ours_s:>10,.0f} lines/s  "
          f"CPU {ours_cpu:6.2f} s  ({lines / ours_cpu:,.0f} lines per CPU-second)")
    print(f"  pflogsumm              {theirs_s:6.2f} s  {lines / theirs_s:>10,.0f} lines/s  "
          f"CPU {theirs_cpu:6.2f} s  ({lines / theirs_cpu:,.0f} lines per CPU-second)")
    print(f"  poolwarden is {theirs_s / ours_s:.2f}x pflogsumm (target >= 3x), "
          f"{theirs_cpu / ours_cpu:.2f}x per CPU-second")
    print(f"  re-import of the same file: {again_s:.2f} s, {again_s / ours_s:.1%} of the first; "
          + ", ".join(f"{name} {s:.2f} s" for name, s in copies.items()))
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    print("checks: " + ("all passed" if not problems else f"{len(problems)} failed"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
