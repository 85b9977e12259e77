"""I6: crash-point enumeration on SQLite and PostgreSQL, and a power loss on SQLite.

The ingester is crashed at each point of a batch: after a read, after parsing (before
the transaction), inside the transaction (events written, checkpoint not yet), after
the commit, and after the commit but before it updates what it holds in memory. Once
in process (the crash is an exception nothing catches, the ingester is dropped) at
several batches, and once as a real process that dies by ``os._exit`` there. After
every crash the store is consistent: the stored events are exactly those of the lines
before the stored offset (a rename rotation in between included); after a restart,
every line is stored exactly once.

Power loss: the ingester process keeps every commit in SQLite's WAL; the database
files are copied at random moments (the process stopped with SIGSTOP) and the WAL copy
is cut at a random byte, as the commits not yet synced would be. Opened, the copy is a
consistent earlier point, and catching up from there stores every line once.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import load_config_text
from poolwarden.services.ingest.ingestd import Ingestd
from tests.services.ingest.conftest import START, read_events, standalone, standalone_decisions
from tests.services.ingest.loggen import config_toml

ROOT = Path(__file__).resolve().parents[3]
POINTS = ("read", "parsed", "transaction", "committed", "updated")


class Crash(BaseException):
    pass


class Setup:
    def __init__(self, tmp_path: Path, url: str) -> None:
        self.dir = tmp_path
        self.url = url
        self.config_file = tmp_path / "pw.toml"
        self.config_file.write_text(config_toml(url))
        self.config = load_config_text(config_toml(url), file=str(self.config_file))
        self.log = tmp_path / "mail.log"
        self.files: list[tuple[int, list[tuple[int, int]]]] = []  # (inode, [(id, end)])
        store = open_store(url)
        store.add_decisions(standalone_decisions(range(1000)))
        store.close()

    def write(self, ids: range) -> None:
        with open(self.log, "ab") as f:
            for i in ids:
                f.write(standalone(i).encode())
        inode = self.log.stat().st_ino
        if not self.files or self.files[-1][0] != inode:
            self.files.append((inode, []))
        ends = self.files[-1][1]
        offset = ends[-1][1] if ends else 0
        for i in ids:
            offset += len(standalone(i).encode())
            ends.append((i, offset))

    def rotate(self) -> None:
        os.rename(self.log, self.dir / f"mail.log.{len(self.files)}")
        self.log.touch()

    def check(self, store: SqlStore) -> Counter[int]:
        """The stored events are exactly the lines before the stored position."""
        stored = Counter(int(e.time) - START for e in read_events(store))
        cp = store.checkpoint(str(self.log))
        expected: list[int] = []
        if cp is not None:
            for inode, ends in self.files:
                if inode == cp.inode:
                    expected += [i for i, end in ends if end <= cp.offset]
                    break
                expected += [i for i, _ in ends]
        assert stored == Counter(expected), f"checkpoint {cp} disagrees with the events"
        return stored

    def all_once(self, store: SqlStore) -> None:
        assert self.check(store) == Counter(i for _, ends in self.files for i, _ in ends)


def run_in_process(s: Setup, point: str | None, at: int) -> bool:
    """One run_once that crashes at the ``at``-th ``point``; whether it crashed."""
    store = open_store(s.url)
    seen = [0]

    def reached(name: str) -> None:
        if name == point:
            seen[0] += 1
            if seen[0] == at:
                raise Crash

    def before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "checkpoints" in statement and statement.lstrip().upper().startswith("INSERT"):
            reached("transaction")

    if point == "transaction":
        event.listen(store.engine, "before_cursor_execute", before)
    ingestd = Ingestd(s.config, store, [s.log], batch_lines=40, chunk_bytes=2048,
                      rotate_wait=0.0, hook=reached)
    try:
        ingestd.run_once()
        return False
    except Crash:
        return True
    finally:
        ingestd.close()
        store.close()


def check(s: Setup) -> None:
    store = open_store(s.url)
    try:
        assert isinstance(store, SqlStore)
        s.check(store)
    finally:
        store.close()


@pytest.mark.parametrize("point", POINTS)
def test_i6_crash_points_in_process(tmp_path: Path, store_url: str, point: str) -> None:
    s = Setup(tmp_path, store_url)
    s.write(range(0, 300))
    for at in (1, 2, 5):
        assert run_in_process(s, point, at)
        check(s)
    s.write(range(300, 350))
    s.rotate()
    s.write(range(350, 500))
    for at in (1, 3, 4):
        run_in_process(s, point, at)
        check(s)
    assert not run_in_process(s, None, 0)
    all_once(s)


def all_once(s: Setup) -> None:
    """Every outcome of the written log stored exactly once."""
    store = open_store(s.url)
    try:
        assert isinstance(store, SqlStore)
        s.all_once(store)
    finally:
        store.close()


def run_process(s: Setup, point: str, at: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.services.ingest.runner", "--config",
                           str(s.config_file), "--log", str(s.log), "--once", "--batch", "40",
                           "--chunk", "2048", "--crash-point", point, "--crash-at", str(at)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return done.returncode


@pytest.mark.parametrize("point", POINTS)
def test_i6_crash_points_as_a_process(tmp_path: Path, store_url: str, point: str) -> None:
    s = Setup(tmp_path, store_url)
    s.write(range(0, 200))
    assert run_process(s, point, 3) == 137
    check(s)
    s.write(range(200, 230))
    s.rotate()
    s.write(range(230, 330))
    assert run_process(s, point, 2) == 137
    check(s)
    assert not run_in_process(s, None, 0)
    all_once(s)


def test_i6_power_loss_leaves_a_consistent_earlier_point(tmp_path: Path) -> None:
    rng = random.Random(6)
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    s = Setup(tmp_path, url)
    s.log.touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.services.ingest.runner", "--config",
                             str(s.config_file), "--log", str(s.log), "--batch", "25",
                             "--chunk", "2048", "--poll", "0.005", "--no-autocheckpoint"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    copies: list[Path] = []
    try:
        for n, start in enumerate(range(0, 800, 50)):
            s.write(range(start, start + 50))
            time.sleep(rng.uniform(0.0, 0.03))
            if n % 4 == 3:
                proc.send_signal(signal.SIGSTOP)  # power goes: nothing more reaches the disk
                target = tmp_path / f"copy{n}"
                target.mkdir()
                shutil.copy(tmp_path / "pw.db", target / "pw.db")
                wal = (tmp_path / "pw.db-wal").read_bytes()
                cut = rng.randrange(32, len(wal) + 1) if len(wal) > 32 else len(wal)
                (target / "pw.db-wal").write_bytes(wal[:cut])  # the unsynced tail is lost
                copies.append(target)
                proc.send_signal(signal.SIGCONT)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert copies
    for target in copies:
        copy_url = f"sqlite:///{target / 'pw.db'}"
        store = open_store(copy_url)
        try:
            assert isinstance(store, SqlStore)
            s.check(store)  # a consistent earlier point
            ingestd = Ingestd(s.config, store, [s.log], rotate_wait=0.0)
            ingestd.run_once()
            ingestd.close()
            s.all_once(store)  # and from there, every line once
        finally:
            store.close()
