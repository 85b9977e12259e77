"""The command line end to end on the example configuration and a real SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from poolwarden.main import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def events_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_validate_example_ok(config_file):
    result = run("validate", str(config_file))
    assert result.exit_code == 0, result.output
    assert "8 tenants" in result.output


def test_validate_reports_line_and_field(config_file):
    text = config_file.read_text().replace('plan = "dedicated"', 'plann = "dedicated"')
    config_file.write_text(text)
    line = next(i for i, raw in enumerate(text.splitlines(), 1) if raw.startswith("plann"))
    result = run("validate", str(config_file))
    assert result.exit_code == 2
    assert f"{config_file}:{line}" in result.output
    assert "plann" in result.output


def test_route_json_gives_action_ip_pool_reason(config_file):
    result = run("route", "--config", str(config_file), "--tenant", "bigretail",
                 "--recipient", "ann@gmail.com", "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["action"] == "route"
    assert decision["ip"] == "127.0.0.21"
    assert decision["pool"] == "dedicated:bigretail"
    assert "dedicated" in decision["reason"]


def test_route_identifies_tenant_by_sender_domain(config_file):
    result = run("route", "-c", str(config_file), "--sender", "x@updates.harborlegal.example",
                 "--recipient", "b@smallbiz.example", "--json")
    decision = json.loads(result.output)
    assert decision["pool"] == "shared-new"  # not the private domain
    result = run("route", "-c", str(config_file), "--sender", "x@harborlegal.example",
                 "--recipient", "b@smallbiz.example", "--json")
    assert json.loads(result.output)["ip"] == "127.0.0.24"


def test_route_unknown_tenant_is_a_clear_error(config_file):
    result = run("route", "-c", str(config_file), "--tenant", "nosuch", "--recipient", "a@b.c")
    assert result.exit_code == 2
    assert "unknown tenant 'nosuch'" in result.output


def test_config_from_environment(config_file, monkeypatch):
    monkeypatch.setenv("POOLWARDEN_CONFIG", str(config_file))
    result = run("tenants", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 8


def test_import_is_idempotent_and_all_or_nothing(config_file, tmp_path):
    now = time.time()
    rows = [{"key": f"k{i}", "time": now - 60, "kind": "delivered", "tenant": "corner-bakery",
             "ip": "127.0.0.13", "recipient": f"u{i}@gmail.com"} for i in range(5)]
    good = events_file(tmp_path / "good.jsonl", rows)
    first = run("events", "import", str(good), "-c", str(config_file))
    assert first.exit_code == 0, first.output
    assert "5 events added" in first.output
    again = run("events", "import", str(good), "-c", str(config_file))
    assert "0 events added, 5 already stored" in again.output

    bad_rows = [dict(r, key=f"new{i}") for i, r in enumerate(rows)]
    bad_rows[2] = {"time": now, "kind": "bounced", "tenant": "corner-bakery"}
    bad = events_file(tmp_path / "bad.jsonl", bad_rows)
    result = run("events", "import", str(bad), "-c", str(config_file))
    assert result.exit_code == 2
    assert f"{bad}:3" in result.output and "kind" in result.output
    rows_out = json.loads(run("tenants", "-c", str(config_file), "--json").output)
    bakery = next(r for r in rows_out if r["name"] == "corner-bakery")
    assert bakery["volume"] == 5  # nothing from the bad file was stored

    (tmp_path / "junk.jsonl").write_text('{"key": "z", "time": 1}\nnot json\n')
    result = run("events", "import", str(tmp_path / "junk.jsonl"), "-c", str(config_file))
    assert result.exit_code == 2 and "junk.jsonl:1" in result.output


def test_unknown_tenant_in_events_names_the_line(config_file, tmp_path):
    path = events_file(tmp_path / "e.jsonl", [
        {"time": time.time(), "kind": "delivered", "tenant": "corner-bakery"},
        {"time": time.time(), "kind": "delivered", "tenant": "ghost"}])
    result = run("events", "import", str(path), "-c", str(config_file))
    assert result.exit_code == 2
    assert f"{path}:2" in result.output and "ghost" in result.output


def test_override_is_recorded_and_pins(config_file):
    result = run("override", "northwind-news", "--tier", "risky", "--why", "ticket 4411",
                 "--actor", "alice", "-c", str(config_file))
    assert result.exit_code == 0, result.output
    detail = json.loads(run("tenant", "show", "northwind-news", "-c", str(config_file),
                            "--json").output)
    assert detail["tier"] == "risky" and detail["pinned"] is True
    move = detail["moves"][0]
    assert (move["actor"], move["reason"], move["source"]) == ("alice", "ticket 4411", "cli")
    assert (move["before"], move["after"]) == ("good", "risky")
    decision = json.loads(run("route", "-c", str(config_file), "--tenant", "northwind-news",
                              "--recipient", "a@gmail.com", "--json").output)
    assert decision["pool"] == "shared-new"
    cleared = run("override", "northwind-news", "--clear", "--why", "done", "-c",
                  str(config_file))
    assert cleared.exit_code == 0
    detail = json.loads(run("tenant", "show", "northwind-news", "-c", str(config_file),
                            "--json").output)
    assert detail["pinned"] is False and detail["moves"][0]["rule"] == "override_cleared"


def test_override_needs_a_reason_and_a_known_tier(config_file):
    result = run("override", "northwind-news", "--tier", "platinum", "--why", "x",
                 "-c", str(config_file))
    assert result.exit_code == 2
    result = run("override", "northwind-news", "--tier", "good", "--why", "  ",
                 "-c", str(config_file))
    assert result.exit_code == 2 and "reason" in result.output


def test_ips_and_ip_show_with_neighbours(config_file, tmp_path):
    now = time.time()
    rows = [{"key": f"a{i}", "time": now - 100, "kind": "hard_bounce", "tenant": "corner-bakery",
             "ip": "127.0.0.13", "recipient": "x@gmail.com"} for i in range(3)]
    rows += [{"key": f"b{i}", "time": now - 100, "kind": "hard_bounce",
              "tenant": "pixelforge", "ip": "127.0.0.13", "recipient": "x@gmail.com"}
             for i in range(9)]
    rows.append({"key": "t", "time": now - 100, "kind": "trap_hit", "tenant": "pixelforge",
                 "ip": "127.0.0.13", "recipient": "trap@trap.example"})
    run("events", "import", str(events_file(tmp_path / "n.jsonl", rows)), "-c",
        str(config_file))
    listing = json.loads(run("ips", "-c", str(config_file), "--json").output)
    assert {"127.0.0.11", "127.0.0.21"} <= {r["address"] for r in listing}
    detail = json.loads(run("ip", "show", "127.0.0.13", "-c", str(config_file),
                            "--json").output)
    ranking = detail["neighbours"]
    assert [n["tenant"] for n in ranking] == ["pixelforge", "corner-bakery"]
    assert ranking[0]["bounce_share"] == 0.75 and ranking[0]["trap_share"] == 1.0
    text = run("ip", "show", "127.0.0.13", "-c", str(config_file)).output
    assert "pixelforge" in text and "75%" in text


def test_config_defaults_lists_thresholds():
    result = run("config", "defaults", "--json")
    names = {row["name"] for row in json.loads(result.output)}
    assert "thresholds.hard_bounce_risky" in names


def test_demo_runs_and_moves_the_dirty_tenant(config_file):
    result = run("demo", "-c", str(config_file), "--days", "14")
    assert result.exit_code == 0, result.output
    assert "northwind-news: good → risky" in result.output
    assert "suspended" in result.output
    again = run("demo", "-c", str(config_file), "--days", "14")
    assert " 0 events stored" in again.output or "0 events stored" in again.output
