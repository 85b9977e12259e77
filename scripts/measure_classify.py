#!/usr/bin/env python3
"""Measure bounce classification against the labelled corpus (../shared/corpus).

Reads ``bounces/manifest.csv`` (one row per recipient, sisimai's labels) and
``arf/manifest.csv``; parses every sample with ``poolwarden.wire.dsn.parse``
and prints: reason agreement (exact), near-miss agreement (filtered, rejected,
blocked, policyviolation, spamdetected counted as one family), hard/soft
agreement, crashes, the (expected -> got) confusion pairs, the ARF checks and
the non-bounce checks. ``--verbose`` lists every disagreeing row.

    .venv/bin/python scripts/measure_classify.py [--verbose] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from poolwarden.wire.dsn import ParsedFeedback, parse

NEAR_MISS = frozenset({"filtered", "rejected", "blocked", "policyviolation", "spamdetected"})
NON_FAILURE = {"delivered": "delivered", "vacation": "autoreply", "not-bounce": "other"}
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def _load(path: Path) -> tuple[ParsedFeedback | None, str, float]:
    started = time.perf_counter()
    try:
        result = parse(path.read_bytes())
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started
    return result, "", time.perf_counter() - started


def measure_bounces(corpus: Path, verbose: bool) -> dict[str, float]:
    rows_by_file: dict[str, list[dict[str, str]]] = defaultdict(list)
    with (corpus / "bounces" / "manifest.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows_by_file[row["file"]].append(row)

    total = exact = near = hard_ok = crashes = 0
    nonfail_total = nonfail_ok = 0
    confusion: Counter[tuple[str, str]] = Counter()
    slowest = (0.0, "")
    elapsed = 0.0
    for name, rows in sorted(rows_by_file.items()):
        result, crash, took = _load(corpus / "bounces" / name)
        elapsed += took
        slowest = max(slowest, (took, name))
        if result is None:
            crashes += 1
            print(f"CRASH {name}: {crash}")
            continue
        rows.sort(key=lambda r: int(r["recipient_index"]))
        for i, row in enumerate(rows):
            expected = row["expected_reason"]
            want_hard = row["sisimai_hardbounce"] == "true"
            total += 1
            if expected in NON_FAILURE:
                nonfail_total += 1
                ok = result.kind == NON_FAILURE[expected] and not result.recipients
                nonfail_ok += ok
                got = result.kind if ok else (
                    result.recipients[0].reason if result.recipients else result.kind)
                hard_ok += ok and not want_hard
                if ok:
                    exact += 1
                    near += 1
                else:
                    confusion[(expected, got)] += 1
                    if verbose:
                        print(f"  {name}#{i + 1}: expected {expected}, got {got}")
                continue
            rcpt = result.recipients[i] if i < len(result.recipients) else None
            got = rcpt.reason if rcpt else f"<none:{result.kind}>"
            got_hard = rcpt.hard if rcpt else False
            hard_ok += got_hard == want_hard
            if got == expected:
                exact += 1
                near += 1
                continue
            if expected in NEAR_MISS and got in NEAR_MISS:
                near += 1
            confusion[(expected, got)] += 1
            if verbose:
                detail = f" [{rcpt.rule_id}] {rcpt.dsn_status} {rcpt.diagnostic[:160]!r}" if (
                    rcpt) else f" problems={result.problems}"
                print(f"  {name}#{i + 1}: expected {expected}, got {got}{detail}")

    print(f"bounce samples: {len(rows_by_file)} files, {total} recipient rows")
    print(f"reason agreement (exact):      {exact}/{total} = {100 * exact / total:.1f} %")
    print(f"reason agreement (near-miss):  {near}/{total} = {100 * near / total:.1f} %  "
          f"(near-miss family: {', '.join(sorted(NEAR_MISS))})")
    print(f"hard/soft agreement:           {hard_ok}/{total} = {100 * hard_ok / total:.1f} %")
    print(f"non-bounce samples right:      {nonfail_ok}/{nonfail_total}")
    print(f"crashes:                       {crashes}")
    print(f"time: {elapsed:.2f} s total, slowest {slowest[0] * 1000:.1f} ms ({slowest[1]})")
    if confusion:
        print("confusion (expected -> got: count):")
        for (want, got), count in confusion.most_common():
            print(f"  {want:>16} -> {got:<16} {count}")
    return {"exact": exact / total, "near": near / total, "hard": hard_ok / total,
            "crashes": crashes}


def measure_arf(corpus: Path) -> int:
    bad = 0
    n = 0
    with (corpus / "arf" / "manifest.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            n += 1
            result, crash, _ = _load(corpus / "arf" / row["file"])
            want = row["expected_feedback_type"]
            if result is None:
                bad += 1
                print(f"  arf CRASH {row['file']}: {crash}")
                continue
            ok = result.kind == "complaint" and result.feedback_type == want
            if not ok:
                bad += 1
                print(f"  arf {row['file']}: expected complaint/{want}, got "
                      f"{result.kind}/{result.feedback_type} {result.problems}")
            elif str(len(result.complaints)) != row["n_reports"]:
                print(f"  arf {row['file']}: {len(result.complaints)} complaints, sisimai "
                      f"reports {row['n_reports']} (not counted)")
    print(f"arf samples: {n - bad}/{n} complaints with the expected feedback type")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    corpus: Path = args.corpus
    if not (corpus / "bounces" / "manifest.csv").is_file():
        print(f"corpus not found at {corpus} (expected bounces/manifest.csv there); "
              "pass --corpus DIR", file=sys.stderr)
        return 2
    figures = measure_bounces(corpus, args.verbose)
    arf_bad = measure_arf(corpus) if (corpus / "arf" / "manifest.csv").is_file() else 0
    return 1 if figures["crashes"] or arf_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
