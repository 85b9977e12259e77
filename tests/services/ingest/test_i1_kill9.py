"""I1: kill -9 of a real ingester process while a log is written and rename-rotated.

A generated Postfix log (syslog stamps, ground truth kept by the generator) is written
in chunks of random size, so the file often ends halfway through a line; halfway, it is
rotated the ``create`` way (rename, new file). The ingester runs as its own process and
is killed with SIGKILL at random moments (at least once while a line is half written),
then started again. At the end the stored events equal the ground truth: each delivery,
deferral and bounce exactly once, no line split in two.

``POOLWARDEN_I1_SEEDS`` sets the number of seeds (10 by default; docs/testing.md asks 50
nightly) and ``POOLWARDEN_I1_MESSAGES`` the log length (about 8.5 lines per message).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poolwarden.adapters.sqlstore import open_store
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, generate, observed

ROOT = Path(__file__).resolve().parents[3]
SEEDS = int(os.environ.get("POOLWARDEN_I1_SEEDS", "10"))
MESSAGES = int(os.environ.get("POOLWARDEN_I1_MESSAGES", "600"))


def spawn(config: Path, log: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.services.ingest.runner", "--config",
                             str(config), "--log", str(log), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def caught_up(url: str, log: Path, timeout: float = 60.0) -> None:
    """Wait until the stored checkpoint is at the end of the current file."""
    store = open_store(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cp = store.checkpoint(str(log))
            st = log.stat()
            if cp is not None and (cp.inode, cp.offset) == (st.st_ino, st.st_size):
                return
            time.sleep(0.05)
        pytest.fail(f"the ingester did not catch up: {store.checkpoint(str(log))}")
    finally:
        store.close()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_i1_kill9_at_random_points_with_a_rename_rotation(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = tmp_path / "pw.toml"
    config.write_text(config_toml(url))
    truth = generate(seed, MESSAGES, fmt="syslog")
    store = open_store(url)
    store.add_decisions(truth.decisions)
    store.close()
    text = "".join(truth.lines).encode()
    middle = text.index(b"\n", len(text) // 2) + 1  # postlogd reopens between lines
    log = tmp_path / "mail.log"
    log.touch()

    cuts = sorted({rng.randrange(1, len(text)) for _ in range(60)} | {middle, len(text)})
    kill_after = set(rng.sample(range(len(cuts) - 1), 3))
    proc = spawn(config, log)
    killed_mid_line = 0
    written = 0
    try:
        for n, cut in enumerate(cuts):
            if written == middle:
                os.rename(log, tmp_path / "mail.log.1")
                log.touch()
            with open(log, "ab") as f:
                f.write(text[written:cut])
            written = cut
            time.sleep(rng.uniform(0, 0.02))
            if n in kill_after or (not killed_mid_line and text[written - 1:written] != b"\n"
                                   and n > len(cuts) // 3):
                time.sleep(rng.uniform(0, 0.05))
                kill9(proc)
                killed_mid_line += text[written - 1:written] != b"\n"
                proc = spawn(config, log)
        caught_up(url, log)
    finally:
        kill9(proc)
    assert killed_mid_line >= 1
    store = open_store(url)
    try:
        got = observed(read_events(store))
    finally:
        store.close()
    missing, extra = truth.truth() - got, got - truth.truth()
    assert not missing and not extra, f"missing {list(missing.items())[:3]}, " \
                                      f"extra {list(extra.items())[:3]}"
