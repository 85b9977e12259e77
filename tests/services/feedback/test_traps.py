"""Spam traps: the configured traps (trap_hit_for) and ``poolwarden ingest traps FILE``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.cli.ingest_cmds import ingest_app
from poolwarden.config.load import load_config
from poolwarden.core.reputation import Scope
from poolwarden.core.traps import Traps, trap_hit_for
from poolwarden.services.feedback.traps import read_trap_feed, traps_of
from poolwarden.services.reputation.engine import Engine
from tests.services.feedback.support import NOW, load

runner = CliRunner()


@pytest.mark.parametrize(("recipient", "hit"), [
    ("trap1@spamtrap.example", True),
    ("<TRAP1@SpamTrap.Example.>", True),
    ("trap2@spamtrap.example", False),
    ("anyone@traps.example", True),
    ("x@deep.sub.traps.example", True),
    ("x@nottraps.example", False),
    ("x@traps.example.com", False),
    ("trap1@spamtrap.example.org", False),
    ("", False),
])
def test_configured_traps(tmp_path: Path, recipient: str, hit: bool) -> None:
    traps = traps_of(load(tmp_path))
    assert traps == Traps(frozenset({"trap1@spamtrap.example"}), frozenset({"traps.example"}))
    assert trap_hit_for(recipient, traps) is hit


def test_no_traps_configured_is_never_a_hit() -> None:
    assert not Traps.of()
    assert trap_hit_for("anyone@traps.example", Traps.of()) is False


# -- poolwarden ingest traps ----------------------------------------------------------------

CSV = """time,trap_address,sending_ip,sender_domain,message_id
2026-05-28T08:00:00Z,trap@vendor-traps.example,127.0.0.21,bigretail.example,<a@x>
{t},Other@Vendor-Traps.example,127.0.0.21,,<b@x>
{t},spam@gmail.com,127.0.0.13,news.northwind.example,<c@x>
{t},trap@vendor-traps.example,203.0.113.9,unknown.example,<d@x>
""".replace("{t}", str(int(NOW - 600)))


def config_file(tmp_path: Path) -> Path:
    """poolwarden.toml with the feedback and traps sections; its store is poolwarden.db
    beside it (the default)."""
    load(tmp_path)
    return tmp_path / "poolwarden.toml"


def stored_trap_hits(config: Path) -> dict[str, int]:
    loaded = load_config(config)
    store = open_store(loaded.store_url)
    try:
        return {r.scope_id: r.counts.trap_hits for r in store.counters(since_day=0)
                if r.scope is Scope.TENANT and r.provider == "*" and r.counts.trap_hits}
    finally:
        store.close()


def test_ingest_traps_csv_attributes_by_domain_then_dedicated_ip(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text(CSV)
    result = runner.invoke(ingest_app, ["traps", str(feed), "-c", str(config)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "5 lines: 3 trap hits added, 0 already stored, 1 not attributed" in result.output
    assert "line 5: no tenant sends from domain unknown.example" in result.output
    assert stored_trap_hits(config) == {"bigretail": 2, "northwind-news": 1}
    again = runner.invoke(ingest_app, ["traps", str(feed), "-c", str(config)],
                          catch_exceptions=False)
    assert "0 trap hits added, 3 already stored" in again.output
    assert stored_trap_hits(config) == {"bigretail": 2, "northwind-news": 1}


def test_ingest_traps_json_lines_and_a_tier_move(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    feed = tmp_path / "feed.jsonl"
    now = time.time()  # the command evaluates tiers as of now
    rows = [{"time": now - 60 * i, "trap": f"t{i}@vendor-traps.example", "ip": "127.0.0.24",
             "sender_domain": "harborlegal.example", "message_id": f"<m{i}@x>"}
            for i in range(5)]
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(ingest_app, ["traps", str(feed), "-c", str(config)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "5 trap hits added" in result.output
    assert "harbor-legal: new -> " in result.output  # trap hits act by count
    assert stored_trap_hits(config) == {"harbor-legal": 5}


@pytest.mark.parametrize(("line", "message"), [
    ("not-a-time,trap@t.example,127.0.0.21,bigretail.example,", "'time'"),
    (f"{int(NOW)},no-at-sign,127.0.0.21,bigretail.example,", "trap address"),
    (f"{int(NOW)},trap@t.example,999.1.1.1,bigretail.example,", "not an IP address"),
    (f"{int(NOW)},trap@t.example,127.0.0.21,bigretail.example,<m>,extra", "columns"),
    (f"{int(NOW)},,127.0.0.21,,", "missing required field 'trap'"),
    ("2026-05-28T08:00:00,trap@t.example,127.0.0.21,,", "time zone"),
])
def test_a_bad_line_stops_the_import_with_its_number_and_stores_nothing(
        tmp_path: Path, line: str, message: str) -> None:
    config = config_file(tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text(CSV + line + "\n" + CSV.splitlines()[1] + "\n")
    result = runner.invoke(ingest_app, ["traps", str(feed), "-c", str(config)])
    assert result.exit_code == 2
    assert f"{feed}:6" in result.output and message in result.output, result.output
    assert stored_trap_hits(config) == {}


def test_bad_json_line_number(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    feed = tmp_path / "feed.jsonl"
    good = json.dumps({"time": NOW, "trap": "t@x.example", "ip": "127.0.0.21"})
    feed.write_text(f"{good}\n\n{good}\n{{not json\n")
    result = runner.invoke(ingest_app, ["traps", str(feed), "-c", str(config)])
    assert result.exit_code == 2 and f"{feed}:4" in result.output and "JSON" in result.output
    assert stored_trap_hits(config) == {}


def test_headerless_csv_uses_the_documented_column_order(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    engine = Engine(loaded, open_store("sqlite://"), now=NOW)
    try:
        feed = tmp_path / "feed.csv"
        feed.write_text(f"# vendor export\n{int(NOW)},t@traps.example,127.0.0.22,,\n")
        parsed = read_trap_feed(engine, feed)
        [event] = parsed.events
        assert (event.tenant, event.ip, event.recipient_domain) == (
            "travelhub", "127.0.0.22", "traps.example")
        assert "t@traps.example" not in event.reason  # trap addresses are not shown
    finally:
        engine.store.close()
