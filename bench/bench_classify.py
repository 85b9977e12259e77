"""Benchmark: bounce classification against sisimai, on the same files in the same run.

Two sets: the labelled corpus (``../shared/corpus/bounces``, sisimai's labels) and the
checking set of documented provider replies (``bench/provider_replies.py``, wrapped into
Postfix DSNs in a temporary directory, labels from the providers' pages). For each set
it prints, for poolwarden (``wire.dsn.parse`` in this process) and for sisimai (Debian's
``libsisimai-perl``, driven by a small Perl script through one subprocess):

* messages per second and time per message: poolwarden in-process; sisimai both for the
  whole command (Perl start-up and module loading included) and per message (the time
  inside ``Sisimai->make`` only);
* agreement with the labels: exact reason and hard/soft, per recipient row.

sisimai 4.x says ``softbounce`` (0 = hard); its reason names are the same vocabulary.
Usage: python bench/bench_classify.py [--corpus DIR] [--rounds N] [--no-sisimai]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from poolwarden.wire.dsn import parse
from provider_replies import CHECK_SET, to_dsn

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
NON_FAILURE = {"delivered": "delivered", "vacation": "autoreply", "not-bounce": "other"}
PERL = r"""
use strict; use warnings; use Sisimai; use JSON::PP; use Time::HiRes qw(time);
binmode STDOUT;
my $json = JSON::PP->new->canonical;
while (my $f = <STDIN>) {
    chomp $f;
    my $t0 = time;
    my $v = eval { Sisimai->make($f, 'delivered' => 1, 'vacation' => 1) } || [];
    my $dt = time - $t0;
    my @r = map { { reason => $_->reason, hard => ($_->softbounce eq '0' ? 1 : 0) } } @$v;
    print $json->encode({ file => $f, seconds => $dt, recipients => \@r }), "\n";
}
"""


@dataclass
class Row:
    expected: str
    hard: bool


@dataclass
class Figures:
    rows: int = 0
    reason_ok: int = 0
    hard_ok: int = 0

    def line(self) -> str:
        return (f"reasons {self.reason_ok}/{self.rows} = {100 * self.reason_ok / self.rows:.1f} %, "
                f"hard/soft {self.hard_ok}/{self.rows} = {100 * self.hard_ok / self.rows:.1f} %")


def score(labels: dict[Path, list[Row]], got: dict[Path, list[tuple[str, bool]]],
          kinds: dict[Path, str] | None) -> Figures:
    """Agreement per recipient row; a non-failure row is right when nothing failed."""
    fig = Figures()
    for path, rows in labels.items():
        recipients = got.get(path, [])
        for i, row in enumerate(rows):
            fig.rows += 1
            if row.expected in NON_FAILURE:
                failed = [r for r in recipients if r[0] not in ("delivered", "vacation")]
                ok = not failed
                if kinds is not None:
                    ok = ok and kinds.get(path) == NON_FAILURE[row.expected]
                fig.reason_ok += ok
                fig.hard_ok += ok and not row.hard
                continue
            reason, hard = recipients[i] if i < len(recipients) else ("", False)
            fig.reason_ok += reason == row.expected
            fig.hard_ok += hard == row.hard
    return fig


def run_ours(files: list[Path], rounds: int
             ) -> tuple[dict[Path, list[tuple[str, bool]]], dict[Path, str], float]:
    blobs = [(p, p.read_bytes()) for p in files]
    got: dict[Path, list[tuple[str, bool]]] = {}
    kinds: dict[Path, str] = {}
    started = time.perf_counter()
    for _ in range(rounds):
        for path, raw in blobs:
            result = parse(raw)
            got[path] = [(r.reason, r.hard) for r in result.recipients]
            kinds[path] = result.kind
    per_message = (time.perf_counter() - started) / (rounds * len(blobs))
    return got, kinds, per_message


def run_sisimai(files: list[Path]) -> tuple[dict[Path, list[tuple[str, bool]]], float, float]:
    """(results, whole-command seconds per message, in-make() seconds per message)."""
    started = time.perf_counter()
    done = subprocess.run(["perl", "-e", PERL], input="\n".join(map(str, files)) + "\n",
                          capture_output=True, text=True, check=True, timeout=3600)
    whole = time.perf_counter() - started
    got: dict[Path, list[tuple[str, bool]]] = {}
    inside = 0.0
    for line in done.stdout.splitlines():
        item = json.loads(line)
        inside += item["seconds"]
        got[Path(item["file"])] = [(r["reason"], bool(r["hard"])) for r in item["recipients"]]
    return got, whole / len(files), inside / len(files)


def corpus_set(corpus: Path) -> dict[Path, list[Row]]:
    rows: dict[Path, list[tuple[int, Row]]] = defaultdict(list)
    with (corpus / "bounces" / "manifest.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            rows[corpus / "bounces" / r["file"]].append(
                (int(r["recipient_index"]), Row(r["expected_reason"],
                                                r["sisimai_hardbounce"] == "true")))
    return {p: [row for _, row in sorted(v, key=lambda x: x[0])] for p, v in rows.items()}


def check_set(tmp: Path) -> dict[Path, list[Row]]:
    out: dict[Path, list[Row]] = {}
    for n, reply in enumerate(CHECK_SET, 1):
        path = tmp / f"check-{n:03d}-{reply.provider}.eml"
        path.write_bytes(to_dsn(n, reply))
        temporary = reply.reply.startswith("4")
        out[path] = [Row(reply.expected, reply.expected in ("userunknown", "hostunknown")
                         and not temporary)]
    return out


def report(name: str, labels: dict[Path, list[Row]], rounds: int, sisimai: bool) -> None:
    files = sorted(labels)
    got, kinds, per = run_ours(files, rounds)
    print(f"\n{name}: {len(files)} messages, {sum(map(len, labels.values()))} recipient rows")
    print(f"  poolwarden  {1 / per:>9,.0f} msg/s  {per * 1000:7.3f} ms/msg (in process)   "
          f"{score(labels, got, kinds).line()}")
    if not sisimai:
        return
    s_got, whole, inside = run_sisimai(files)
    print(f"  sisimai     {1 / whole:>9,.0f} msg/s  {whole * 1000:7.3f} ms/msg (whole command)  "
          f"{score(labels, s_got, None).line()}")
    print(f"  sisimai     {1 / inside:>9,.0f} msg/s  {inside * 1000:7.3f} ms/msg (inside make())")
    print(f"  ratio (poolwarden per message vs sisimai inside make()): {inside / per:.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--rounds", type=int, default=3, help="passes over each set (ours)")
    ap.add_argument("--no-sisimai", action="store_true")
    args = ap.parse_args()
    sisimai = not args.no_sisimai
    if sisimai and (shutil.which("perl") is None or subprocess.run(
            ["perl", "-MSisimai", "-e", "1"], capture_output=True).returncode):
        print("sisimai not found (apt-get install libsisimai-perl); --no-sisimai to skip",
              file=sys.stderr)
        return 2
    if sisimai:
        version = subprocess.run(["perl", "-MSisimai", "-e", "print $Sisimai::VERSION"],
                                 capture_output=True, text=True).stdout
        print(f"sisimai {version} (Debian libsisimai-perl)")
    if (args.corpus / "bounces" / "manifest.csv").is_file():
        report("corpus (development set, sisimai's labels)", corpus_set(args.corpus),
               args.rounds, sisimai)
    with tempfile.TemporaryDirectory() as tmp:
        report("checking set (documented provider replies as Postfix DSNs, not used for rules)",
               check_set(Path(tmp)), args.rounds, sisimai)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
