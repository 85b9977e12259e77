"""Reaction rules inside a running ``poolwarden serve`` runtime (real SQLite store, real log
follower, real policy listener on loopback): SIGHUP reload keeps the running rules when a
rule file is bad and takes good new ones; an activation reaches the agent's snapshot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from poolwarden.adapters.listeners import Listen
from poolwarden.core.shaping import RestrictionKind
from poolwarden.services.runtime import Runtime
from tests.services.reputation.test_reaction_service import EXAMPLE, GMAIL_428, RULES, LogWriter

NEW_RULES = RULES.replace("test-gmail-428", "renamed-gmail-428")


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_reload_and_follow(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    log_path = tmp_path / "postfix.log"
    log_path.write_text("")
    config = tmp_path / "poolwarden.toml"
    config.write_text(EXAMPLE.read_text() + '\n[policyd]\nreload_interval = 0.1\n'
                      '\n[ingest]\nlogs = ["postfix.log"]\npoll_interval = 0.1\n'
                      '\n[reaction]\nbuiltin_rules = false\nrule_files = ["rules.toml"]\n')
    runtime = Runtime(config, listens=[Listen.parse("tcp:127.0.0.1:0")])

    async def scenario() -> None:
        await runtime.start()
        try:
            await until(lambda: runtime.ingest.reactions is not None, "the log follower")
            service = runtime.ingest.reactions
            assert service is not None
            names = [r.name for r in service.state.rules]
            assert "test-gmail-428" in names

            rules.write_text(RULES.replace('action = "pause"', 'action = "explode"'))
            running = runtime.config
            await runtime.reload_config()  # SIGHUP with a bad rule file
            assert runtime.config is running
            assert [r.name for r in service.state.rules] == names

            rules.write_text(NEW_RULES)
            await runtime.reload_config()  # SIGHUP with a good one
            assert "renamed-gmail-428" in [r.name for r in runtime.config.reaction_rules]
            assert "renamed-gmail-428" in [r.name for r in service.state.rules]

            log = LogWriter()
            now = time.time()
            for i in range(3):
                log.message(now - 30 + i, "bigretail", "orders@bigretail.example",
                            f"u{i}@gmail.com", "127.0.0.21", dsn="4.7.28", status="deferred",
                            reply=GMAIL_428)
            log.write(log_path)

            def paused() -> bool:
                snap = runtime.snapshot
                return snap is not None and any(
                    r.kind is RestrictionKind.PAUSE and r.rule == "renamed-gmail-428"
                    for r in snap.restrictions.for_ip("127.0.0.21", "google", time.time()))

            await until(paused, "the agent's snapshot to carry the pause")
            assert service.stored == 1
        finally:
            await runtime.shutdown()

    asyncio.run(scenario())
