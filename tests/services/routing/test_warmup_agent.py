"""The agent counts routed recipients per IP and provider and honours today's caps.

Real parts: the agent, the snapshot built by the Engine from a real configuration
(the example file with a small user schedule) over a SQLite store, the warm-up
service storing and reloading counts. No Postfix here: that is tests/e2e.
"""

from __future__ import annotations

from pathlib import Path

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.services.reputation.engine import Engine
from poolwarden.services.reputation.warmup import counter_for, flush_counts
from poolwarden.services.routing.policy_agent import PolicyAgent
from poolwarden.wire.postfix_policy import PolicyRequest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "poolwarden.toml"
NOW = 20000 * 86400.0 + 3600
WARM = "FILTER pw-127-0-0-23:"  # fitclub's warming dedicated IP
SHARED_NEW = {f"FILTER pw-127-0-0-{n}:" for n in (13, 14, 15)}


def config(tmp_path: Path) -> Path:
    schedule = tmp_path / "tiny.toml"
    schedule.write_text('name = "tiny"\n[caps]\ngoogle = [3, 6]\nyahoo = [2, 4]\n'
                        'other = [100, 200]\n')
    text = EXAMPLE.read_text()
    text = text.replace("[store]\n", f'[store]\nurl = "sqlite:///{tmp_path}/pw.db"\n', 1)
    text = text.replace('ip_schedule = "sparkpost"\n',
                        f'schedule_files = ["{schedule}"]\nip_schedule = "tiny"\n', 1)
    path = tmp_path / "poolwarden.toml"
    path.write_text(text)
    return path


def rcpt(recipient: str, instance: str, sender: str = "coach@fitclub.example") -> PolicyRequest:
    return PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                          "sender": sender, "recipient": recipient, "instance": instance})


def test_cap_per_provider_then_overflow_and_counts_survive_a_restart(tmp_path: Path) -> None:
    loaded = load_config(config(tmp_path))
    store = open_store(loaded.store_url)
    try:
        snapshot = Engine(loaded, store, now=NOW).snapshot(NOW)
        agent = PolicyAgent(lambda: snapshot, clock=lambda: NOW)
        gmail = [agent.answer(rcpt(f"g{i}@gmail.com", f"g{i}")) for i in range(5)]
        assert gmail[:3] == [WARM] * 3  # the cap: 3 a day to Google
        assert set(gmail[3:]) <= SHARED_NEW  # the rest overflows to the shared pool (tier new)
        yahoo = [agent.answer(rcpt(f"y{i}@yahoo.com", f"y{i}")) for i in range(3)]
        assert yahoo[:2] == [WARM] * 2 and yahoo[2] in SHARED_NEW
        assert agent.answer(rcpt("x@smallbiz.example", "o1")) == WARM  # "other": unaffected
        assert agent.counts.ip_count("127.0.0.23", "google") == 3
        # the decision log names the rule and keeps the numbers
        overflowed = [d for d in agent.decision_log if d.rule == "warmup:overflow"]
        assert len(overflowed) == 3
        # flushed to the store, a new agent (restart) starts from today's counts
        ws = store
        flush_counts(ws, agent.counts.take_pending(), agent.counts.day)
        restarted = PolicyAgent(lambda: snapshot, clock=lambda: NOW)
        restarted.counts = counter_for(ws, NOW)
        assert restarted.answer(rcpt("g9@gmail.com", "g9")) in SHARED_NEW
        # the next UTC day starts from zero
        tomorrow = PolicyAgent(lambda: snapshot, clock=lambda: NOW + 86400)
        tomorrow.counts = counter_for(ws, NOW)
        assert tomorrow.answer(rcpt("g10@gmail.com", "g10")) == WARM
    finally:
        store.close()


def test_a_message_keeps_one_ip_only_while_that_ip_has_room(tmp_path: Path) -> None:
    loaded = load_config(config(tmp_path))
    store = open_store(loaded.store_url)
    try:
        snapshot = Engine(loaded, store, now=NOW).snapshot(NOW)
        agent = PolicyAgent(lambda: snapshot, clock=lambda: NOW)
        first = [agent.answer(rcpt(f"g{i}@gmail.com", "m1")) for i in range(4)]
        # one message: three Gmail recipients fit, the fourth must leave from elsewhere,
        # so it is split off (4.7.1) and re-sent in its own transaction
        assert first[:3] == [WARM] * 3
        assert first[3].startswith("DEFER_IF_PERMIT 4.7.1")
        assert agent.answer(rcpt("g3@gmail.com", "m2")) in SHARED_NEW
    finally:
        store.close()
