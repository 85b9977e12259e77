"""Warm-up on the command line: validate checks schedule files (file, line, field), and
``ip show`` has the warm-up stage, today's cap and count per provider."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.main import app
from poolwarden.services.reputation.warmup import today_of

runner = CliRunner()

GOOD = 'name = "mine"\nsource = "ours"\n[caps]\ngoogle = [10, 20]\nother = [5, 5]\n'


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def with_schedule(config_file: Path, schedule_text: str, *, use: bool = True) -> Path:
    schedule = config_file.parent / "schedules" / "mine.toml"
    schedule.parent.mkdir(exist_ok=True)
    schedule.write_text(schedule_text)
    extra = 'schedule_files = ["schedules/mine.toml"]\n'
    extra += 'ip_schedule = "mine"\n' if use else 'ip_schedule = "sparkpost"\n'
    text = config_file.read_text().replace('ip_schedule = "sparkpost"\n', extra, 1)
    config_file.write_text(text)
    return schedule


@pytest.mark.parametrize(("body", "line", "field", "message"), [
    ("[caps]\ngoogle = [10, 5]\nother = [1, 1]\n", 2, "caps.google",
     "the schedule decreases: stage 2 (5) is below stage 1 (10)"),
    ("[caps]\nother = [1, 2]\ngmial = [1, 2]\n", 3, "caps.gmial", "unknown provider 'gmial'"),
    ("# a comment\n[caps]\nother = [1, -3]\n", 3, "caps.other", "stage 2: negative cap -3"),
    ("[caps]\ngoogle = [1, 2]\n", 1, "caps", "'other' is required"),
])
def test_validate_names_file_line_and_field_of_a_bad_schedule(config_file, body, line, field,
                                                              message):
    schedule = with_schedule(config_file, body)
    result = run("validate", str(config_file))
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert f"{schedule}:{line}" in flat
    assert f"field '{field}'" in flat
    assert message in flat


def test_validate_unknown_schedule_name_points_at_the_config(config_file):
    with_schedule(config_file, GOOD, use=False)
    text = config_file.read_text().replace('\nstate = "warming"',
                                           '\nwarmup_schedule = "nope"\nstate = "warming"', 1)
    config_file.write_text(text)
    line = next(i for i, raw in enumerate(text.splitlines(), 1)
                if raw.startswith("warmup_schedule"))
    result = run("validate", str(config_file))
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert f"{config_file}:{line}" in flat and "unknown schedule 'nope'" in flat
    assert "ips[7].warmup_schedule" in flat


def test_validate_accepts_a_good_schedule(config_file):
    with_schedule(config_file, GOOD)
    result = run("validate", str(config_file))
    assert result.exit_code == 0, result.output


def test_builtin_schedules_cite_their_source(config_file):
    schedules = {s.name: s for s in load_config(config_file).warmup_schedules}
    assert schedules["sparkpost"].cap(0, "google") == 200
    assert schedules["sparkpost"].full_cap("other") == 10_000_000
    assert "SparkPost" in schedules["sparkpost"].source
    week = schedules["week-one"]
    assert [week.cap(0, p) for p in ("google", "microsoft", "yahoo", "apple", "other")] == \
        [500, 200, 300, 100, 100]
    assert "PowerMTA" in week.source


def test_ip_show_has_the_warmup_object(config_file):
    with_schedule(config_file, GOOD)
    loaded = load_config(config_file)
    store = open_store(loaded.store_url)
    try:
        store.add_warmup_counts(
            today_of(time.time()), {("ip", "127.0.0.23", "google"): 7})
    finally:
        store.close()
    result = run("ip", "show", "127.0.0.23", "--config", str(config_file), "--json")
    assert result.exit_code == 0, result.output
    warmup = json.loads(result.output)["warmup"]
    assert (warmup["schedule"], warmup["stage"], warmup["day"]) == ("mine", 1, 1)
    assert warmup["caps"]["google"] == 10 and warmup["caps"]["yahoo"] == 5
    assert warmup["counts"]["google"] == 7 and warmup["counts"]["yahoo"] == 0
    table = run("ip", "show", "127.0.0.23", "--config", str(config_file))
    assert "warm-up: schedule 'mine'" in table.output
    # an IP that is not warming has no warm-up
    active = run("ip", "show", "127.0.0.21", "--config", str(config_file), "--json")
    assert json.loads(active.output)["warmup"] is None
