"""I8: a Hypothesis state machine against the real ingester and a model of the log.

Rules: WriteLine, WritePartial (a line cut anywhere; the writer finishes it with its next
write), RenameRotate (``create``-style), CopyTruncate (copy, then lines written in the race
window, maybe an ingester poll, then the truncation), Truncate and DeleteRecreate (after
the ingester caught up: the inode usually comes back on this filesystem), GzipRotated
(``postfix logrotate``'s compressor on a rotated file), Kill9 (the ingester is dropped with
nothing committed), Restart and Pause (a poll). The model keeps every line's file
generation and byte range.

The ingester is started before the first line is written (what it never saw and
cannot find any more is not its to report). Invariant: no line is ever stored twice, and
nothing is stored that was not written.
At the end, after catching up: every written line is stored exactly once, except lines
written in a copytruncate race window that no poll read, and each of those lies inside
a reported gap of its file (same fingerprint, covering byte range) -- unless nothing had
been read from that file yet: with no line of it consumed there is no reference to tell a
truncation followed by new writes from plain growth (a documented limit). The store is the
in-memory one (the crash tests cover the SQL stores); ``HYPOTHESIS_I8_EXAMPLES`` and
``HYPOTHESIS_I8_STEPS`` set the number of examples (200) and steps per example (25).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.tailer import Gap, fingerprint_of
from poolwarden.config.load import load_config_text
from poolwarden.ports import AddResult
from poolwarden.services.ingest.ingestd import Ingestd
from poolwarden.services.reputation.engine import Engine
from tests.services.ingest.conftest import START, standalone, standalone_decisions
from tests.services.ingest.loggen import config_toml

EXAMPLES = int(os.environ.get("HYPOTHESIS_I8_EXAMPLES", "200"))
STEPS = int(os.environ.get("HYPOTHESIS_I8_STEPS", "25"))
MAX_LINES = 400
CONFIG = load_config_text(config_toml("sqlite://"), file="pw.toml")
SNAPSHOT = Engine(CONFIG, MemoryStore(), now=float(START)).snapshot(float(START))
DECISIONS = standalone_decisions(range(MAX_LINES))


@dataclass
class Generation:
    """One content of mail.log (a new one after rotation, truncation, delete + create)."""

    content: bytearray = field(default_factory=bytearray)
    lines: list[tuple[int, int, int]] = field(default_factory=list)  # (id, start, end)
    read: int = 0  # complete-line bytes present at the last poll (what it has consumed)


class IngestModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pw-i8-"))
        self.log = self.dir / "mail.log"
        self.log.touch()
        self.store = MemoryStore()
        self.store.add_decisions(DECISIONS)
        self.ingested: Counter[int] = Counter()
        self.gaps: list[Gap] = []
        self.ingestd: Ingestd | None = None
        self.generations = [Generation()]
        self.next_id = 0
        self.partial: tuple[int, bytes] | None = None  # (id, the bytes still to write)
        self.race: set[int] = set()  # lines written in a copytruncate race window
        self.untraceable: set[int] = set()  # ... of a file nothing was read from yet
        self.rotated: list[Path] = []
        self.serial = 0
        self.poll()  # deployed before the log has anything: it knows the file from the start

    # -- helpers ---------------------------------------------------------------

    def added(self, result: AddResult) -> None:
        for event in result.added_events:
            self.ingested[int(event.time) - START] += 1

    def append(self, data: bytes, line: int | None = None, start: int | None = None) -> None:
        gen = self.generations[-1]
        with open(self.log, "ab") as f:
            f.write(data)
        if line is not None and start is not None:
            gen.lines.append((line, start, len(gen.content) + len(data)))
        gen.content += data

    def finish_partial(self) -> None:
        if self.partial is not None:
            line, rest = self.partial
            self.partial = None
            start = len(self.generations[-1].content) - (len(standalone(line).encode())
                                                         - len(rest))
            self.append(rest, line, start)

    def new_line(self) -> tuple[int, bytes]:
        line = self.next_id
        self.next_id += 1
        return line, standalone(line).encode()

    def poll(self) -> None:
        if self.ingestd is None:
            self.ingestd = Ingestd(CONFIG, self.store, [self.log], rotate_wait=0.0,
                                   batch_lines=7, chunk_bytes=1024, snapshot=SNAPSHOT,
                                   on_added=self.added)
        self.ingestd.run_once()
        gen = self.generations[-1]
        gen.read = gen.content.rfind(b"\n") + 1

    def drop(self) -> None:
        if self.ingestd is not None:
            self.gaps.extend(self.ingestd.metrics.gap_records)
            self.ingestd.close()
            self.ingestd = None

    def catch_up(self) -> None:
        self.finish_partial()
        self.poll()
        self.poll()

    def next_name(self) -> Path:
        self.serial += 1
        return self.dir / f"mail.log.{self.serial}"

    # -- rules -----------------------------------------------------------------

    @precondition(lambda self: self.next_id < MAX_LINES - 10)
    @rule(count=st.integers(1, 4))
    def write_line(self, count: int) -> None:
        self.finish_partial()
        for _ in range(count):
            line, data = self.new_line()
            self.append(data, line, len(self.generations[-1].content))

    @precondition(lambda self: self.next_id < MAX_LINES - 10)
    @rule(cut=st.integers(1, 150))
    def write_partial(self, cut: int) -> None:
        self.finish_partial()
        line, data = self.new_line()
        self.append(data[:cut])  # no newline yet: the ingester must not take it
        self.partial = (line, data[cut:])

    @rule()
    def rename_rotate(self) -> None:
        self.finish_partial()
        target = self.next_name()
        os.rename(self.log, target)
        self.rotated.append(target)
        self.log.touch()
        self.generations.append(Generation())

    @precondition(lambda self: self.next_id < MAX_LINES - 10)
    @rule(race=st.integers(0, 3), poll_in_between=st.booleans())
    def copy_truncate(self, race: int, poll_in_between: bool) -> None:
        self.finish_partial()
        target = self.next_name()
        shutil.copyfile(self.log, target)
        self.rotated.append(target)
        for _ in range(race):  # the writer goes on between logrotate's copy and truncate
            line, data = self.new_line()
            self.append(data, line, len(self.generations[-1].content))
            if self.generations[-1].read:
                self.race.add(line)
            else:  # nothing read from it yet: no reference to tell truncation from growth
                self.untraceable.add(line)
        if poll_in_between and self.ingestd is not None:
            self.poll()
        os.truncate(self.log, 0)
        self.generations.append(Generation())

    @rule()
    def truncate(self) -> None:
        self.catch_up()
        os.truncate(self.log, 0)
        self.generations.append(Generation())

    @rule()
    def delete_recreate(self) -> None:
        self.catch_up()
        self.log.unlink()
        self.log.touch()
        self.generations.append(Generation())

    @precondition(lambda self: any(p.suffix != ".gz" and p.exists() for p in self.rotated))
    @rule(pick=st.integers(0, 100))
    def gzip_rotated(self, pick: int) -> None:
        plain = [p for p in self.rotated if p.suffix != ".gz" and p.exists()]
        source = plain[pick % len(plain)]
        target = source.with_name(source.name + ".gz")
        with open(source, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copystat(source, target)
        source.unlink()
        self.rotated.append(target)

    @precondition(lambda self: self.ingestd is not None)
    @rule()
    def kill9(self) -> None:
        self.drop()

    @precondition(lambda self: self.ingestd is None)
    @rule()
    def restart(self) -> None:
        self.poll()

    @rule()
    def pause(self) -> None:
        self.poll()

    # -- checks ----------------------------------------------------------------

    @invariant()
    def nothing_twice_nothing_invented(self) -> None:
        assert not self.ingested or max(self.ingested.values()) == 1, "a line stored twice"
        assert set(self.ingested) <= set(range(self.next_id)), "a line nobody wrote"

    def all_gaps(self) -> list[Gap]:
        return [*self.gaps, *(self.ingestd.metrics.gap_records if self.ingestd else ())]

    def in_a_gap(self, line: int) -> bool:
        for gen in self.generations:
            for number, start, end in gen.lines:
                if number != line:
                    continue
                for gap in self.all_gaps():
                    fp = fingerprint_of(bytes(gen.content[:min(1024, gap.start)]))
                    if fp == gap.fingerprint and gap.start <= start \
                            and (gap.end is None or end <= gap.end):
                        return True
        return False

    def teardown(self) -> None:
        try:
            self.catch_up()
            assert max(self.ingested.values(), default=1) == 1
            missing = [line for line in range(self.next_id)
                       if line not in self.ingested and line not in self.untraceable]
            for line in missing:
                assert line in self.race, f"line {line} lost (not in a copytruncate race)"
                assert self.in_a_gap(line), f"race line {line} lost outside any reported gap"
        finally:
            self.drop()
            shutil.rmtree(self.dir, ignore_errors=True)


IngestModel.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestIngestModel = IngestModel.TestCase
