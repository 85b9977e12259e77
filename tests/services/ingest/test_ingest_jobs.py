"""Log ingestion and the feedback LMTP listener inside ``poolwarden serve`` (``Runtime``).

In process, on real sockets and a real SQLite file: the runtime follows a growing
Postfix log (the generator of tests/services/ingest), takes a bounce over LMTP, answers policy
requests throughout and, stopped, leaves the read position at the end of what it
stored. When ingestion cannot start (the LMTP address is taken) or cannot store (another
process holds the SQLite lock past the busy timeout), routing still answers and the
failures are counted; once the store is free the lines arrive, each once.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from poolwarden.adapters.listeners import Listen
from poolwarden.adapters.sqlstore import open_store
from poolwarden.services.ingest.jobs import MAX_PAUSE, Pacer, Stopping
from poolwarden.services.runtime import Runtime
from poolwarden.wire import verp
from tests.reliability.support import Client, rcpt_attrs
from tests.services.feedback.support import SECRET, dsn
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, generate, observed

VERP_DOMAIN = "bounces.example.net"
BATCH = 50_000  # lines per batch in the catch-up test: its backlog is ~1.4 batches


def write_config(tmp_path: Path, *, lmtp_listen: str = "tcp:127.0.0.1:0",
                 logs: str = '["mail.log"]') -> Path:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    text = config_toml(url) + f"""
[policyd]
reload_interval = 0.05
flush_interval = 0.05

[ingest]
logs = {logs}
poll_interval = 0.05
lmtp = true
retry_interval = 0.05

[feedback]
verp_secrets = ["{SECRET.decode()}"]
verp_domain = "{VERP_DOMAIN}"
lmtp_listen = "{lmtp_listen}"
"""
    path = tmp_path / "poolwarden.toml"
    path.write_text(text)
    return path


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll ``predicate``; the timeout only stops a hung test (no timing is asserted)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def ask_policy(runtime: Runtime) -> str:
    host, _, port = runtime.server.addresses[0][4:].rpartition(":")
    client = Client(*await asyncio.open_connection(host, int(port)))
    try:
        return await client.ask(rcpt_attrs("x@gmail.com", sender="news@acme.example",
                                           sasl_username="acme"))
    finally:
        await client.close()


def lmtp_deliver(address: str, recipient: str, message: bytes) -> tuple[int, bytes]:
    host, _, port = address[4:].rpartition(":")
    with smtplib.LMTP(host, int(port), timeout=30) as lmtp:
        lmtp.ehlo_or_helo_if_needed()
        lmtp.mail("")
        lmtp.rcpt(recipient)
        return lmtp.data(message)


def run(config: Path, body: Callable[[Runtime], Awaitable[None]],
        prepare: Callable[[Runtime], None] = lambda runtime: None) -> Runtime:
    async def main() -> Runtime:
        runtime = Runtime(config, listens=[Listen.parse("tcp:127.0.0.1:0")])
        prepare(runtime)
        await runtime.start()
        try:
            await body(runtime)
        finally:
            await runtime.shutdown()
        return runtime

    return asyncio.run(main())


def test_serve_follows_the_log_takes_lmtp_feedback_and_stops_at_a_checkpoint(
        tmp_path: Path) -> None:
    config = write_config(tmp_path)
    log = generate(31, 200)
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    store.add_decisions(log.decisions)
    store.close()
    maillog = tmp_path / "mail.log"
    maillog.touch()
    half = len(log.lines) // 2
    rp = verp.encode(SECRET, "globex", "Q9", "127.0.0.12", VERP_DOMAIN)
    seen: dict[str, object] = {}

    async def body(runtime: Runtime) -> None:
        jobs = runtime.ingest
        await until(lambda: jobs.ingestd is not None and jobs.lmtp is not None, "the jobs")
        assert jobs.ingestd is not None and jobs.lmtp is not None
        maillog.write_text("".join(log.lines[:half]))
        await until(lambda: jobs.ingestd is not None and jobs.ingestd.metrics.lines_read
                    == half, "the first half")
        seen["action"] = await ask_policy(runtime)
        with maillog.open("a") as f:
            f.write("".join(log.lines[half:]))
        code, text = await asyncio.to_thread(lmtp_deliver, jobs.lmtp.addresses[0], rp,
                                             dsn(rp, "zed@gmail.com"))
        seen["lmtp"] = (code, text)
        await until(lambda: jobs.ingestd is not None and jobs.ingestd.metrics.lines_read
                    == len(log.lines), "the whole log")

    runtime = run(config, body)
    assert str(seen["action"]).startswith("FILTER pw-127-0-0-1"), seen["action"]
    assert seen["lmtp"] == (250, b"2.0.0 Feedback trusted (bounce)")
    stats = runtime.ingest.stats()
    assert stats["lines_read"] == len(log.lines)
    assert stats["feedback_trusted"] == 1 and stats["lmtp_replies_250"] == 1

    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        events = read_events(store)
        from_log = [e for e in events if not e.key.startswith("fb:")]
        assert observed(from_log) == log.truth()  # every outcome, once
        [bounce] = [e for e in events if e.key.startswith("fb:")]
        assert (bounce.tenant, bounce.ip, bounce.kind.value) == ("globex", "127.0.0.12",
                                                                  "hard_bounce")
        [row] = store.feedback(trusted=True)
        assert row.tenant == "globex" and row.recipient == "zed@gmail.com"
        checkpoint = store.checkpoint(str(maillog))
        assert checkpoint is not None and checkpoint.offset == maillog.stat().st_size
    finally:
        store.close()


def test_routing_goes_on_when_ingestion_fails_and_while_the_store_is_locked(
        tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = write_config(tmp_path, lmtp_listen=f"tcp:127.0.0.1:{port}")
    log = generate(32, 60)
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    store.add_decisions(log.decisions)
    store.close()
    maillog = tmp_path / "mail.log"
    maillog.touch()
    seen: dict[str, str] = {}

    async def body(runtime: Runtime) -> None:
        jobs = runtime.ingest
        await until(lambda: jobs.failures["feedback LMTP listener"] >= 2, "LMTP retries")
        await until(lambda: jobs.ingestd is not None, "the follower")
        seen["while-failing"] = await ask_policy(runtime)
        # another process holds the SQLite write lock while Postfix keeps logging
        locker = sqlite3.connect(tmp_path / "pw.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            maillog.write_text("".join(log.lines))
            await until(lambda: jobs.ingestd is not None
                        and jobs.ingestd.metrics.lines_read > 0, "lines read under the lock")
            seen["while-locked"] = await ask_policy(runtime)
            # the write gives up after SQLite's busy timeout: counted, read again later
            await until(lambda: jobs.ingestd is not None and jobs.ingestd.metrics.errors >= 1,
                        "the write to fail", timeout=60)
            seen["after-failure"] = await ask_policy(runtime)
            assert jobs.ingestd is not None
            assert jobs.ingestd.metrics.events_stored == 0  # nothing could be stored yet
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await until(lambda: jobs.ingestd is not None and jobs.ingestd.metrics.events_stored
                    >= sum(log.truth().values()), "the events after the lock")

    try:
        run(config, body)
    finally:
        taken.close()
    assert seen["while-failing"].startswith("FILTER pw-127-0-0-1"), seen
    assert seen["while-locked"].startswith("FILTER pw-127-0-0-1"), seen
    assert seen["after-failure"].startswith("FILTER pw-127-0-0-1"), seen
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        assert observed(read_events(store)) == log.truth()
    finally:
        store.close()


def test_the_pacer_sleeps_as_long_as_the_follower_computed_and_stops_a_long_read() -> None:
    cpu = iter([0.0, 0.040, 0.0405, 0.500])  # CPU seconds of the calling thread
    slept: list[float] = []
    stop = False
    pacer = Pacer(share=0.5, cpu=lambda: next(cpu), sleep=slept.append,
                  stopping=lambda: stop)
    pacer("read")  # the first chunk: nothing to pace yet
    pacer("parsed")  # other points are not chunks
    pacer("read")  # 40 ms of work: 40 ms of sleep
    pacer("read")  # 0.5 ms: below the threshold, no sleep (a live follower)
    pacer("read")  # a huge chunk: capped
    assert slept == [pytest.approx(0.040), MAX_PAUSE]
    stop = True
    with pytest.raises(Stopping):
        pacer("read")


def test_sigterm_in_a_catch_up_stops_at_the_last_commit_and_the_next_start_resumes(
        tmp_path: Path) -> None:
    """A backlog far larger than one batch: the stop lands mid-read, the stored position
    matches the stored events, and a second serve reads the rest, each outcome once."""
    config = write_config(tmp_path)
    log = generate(33, 10_000)  # ~70,000 lines: more than one 50,000-line batch
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    store.add_decisions(log.decisions)
    store.close()
    maillog = tmp_path / "mail.log"
    maillog.write_text("".join(log.lines))

    def park_after_first_batch(runtime: Runtime) -> None:
        """The follower, once past its first batch, waits at its next read until serve
        stops: the stop then lands inside the backlog however fast the machine reads."""
        jobs = runtime.ingest
        jobs.batch_lines = BATCH
        stopping = jobs.pacer._stopping

        def parked() -> bool:
            ingestd = jobs.ingestd
            if ingestd is not None and ingestd.metrics.lines_read >= BATCH:
                while not stopping():
                    time.sleep(0.01)
            return stopping()

        jobs.pacer._stopping = parked

    async def stop_early(runtime: Runtime) -> None:
        jobs = runtime.ingest
        # commit 1 records the new file at offset 0; commit 2 is the first batch of lines
        await until(lambda: jobs.ingestd is not None and jobs.ingestd.metrics.commits >= 2,
                    "a first batch")

    first = run(config, stop_early, park_after_first_batch)
    assert first.ingest.ingestd is not None
    read_first = first.ingest.ingestd.metrics.lines_read
    assert 0 < read_first < len(log.lines)  # stopped inside the backlog
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        checkpoint = store.checkpoint(str(maillog))
        assert checkpoint is not None and 0 < checkpoint.offset < maillog.stat().st_size
        partial = observed(read_events(store))
        assert partial and all(partial[k] <= log.truth()[k] for k in partial)
    finally:
        store.close()

    def at_end() -> bool:
        store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
        try:
            checkpoint = store.checkpoint(str(maillog))
            return checkpoint is not None and checkpoint.offset == maillog.stat().st_size
        finally:
            store.close()

    async def finish(runtime: Runtime) -> None:
        await until(at_end, "the rest of the backlog", 120)

    run(config, finish)
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        assert observed(read_events(store)) == log.truth()
        checkpoint = store.checkpoint(str(maillog))
        assert checkpoint is not None and checkpoint.offset == maillog.stat().st_size
    finally:
        store.close()
