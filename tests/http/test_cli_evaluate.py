"""One-shot evaluation from the CLI matches ``serve``'s periodic job.

``poolwarden events import`` (which evaluates by default) writes one audit row per
automatic move it makes, with the numbers and thresholds, like ``poolwarden evaluate``
and ``serve`` (docs/testing.md S5); ``--no-evaluate`` moves nothing and audits nothing.
``poolwarden evaluate`` also judges warm-up stages after the tier moves, as
``services.runtime``'s evaluate job does, and says what changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.main import app as cli
from poolwarden.services.reputation.engine import Engine
from tests.http.conftest import SHARED_IP, A, Api
from tests.services.reputation.test_warmup_service import DAY, T0, WARM, config, deliveries


def bounces(path: Path, at: float, count: int) -> Path:
    lines = [json.dumps({"kind": "hard_bounce", "time": at, "tenant": A, "ip": SHARED_IP,
                         "recipient": f"gone{i}@gmail.com", "key": f"imp-{i}"})
             for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def tier_audits(api: Api) -> list[dict]:
    return [r for r in api.get("/api/v1/audit", params={"action": "tier.move"}).json()
            if r["target"] == f"tenant:{A}"]


def test_events_import_audits_the_moves_it_makes(api: Api, tmp_path: Path) -> None:
    events = bounces(tmp_path / "events.jsonl", api.now - 600, 300)
    run = CliRunner().invoke(cli, ["events", "import", str(events), "--no-evaluate",
                                   "-c", str(api.config_file)])
    assert run.exit_code == 0, run.output
    assert tier_audits(api) == [] and api.store.moves(A) == []  # nothing evaluated
    run = CliRunner().invoke(cli, ["events", "import", str(events), "-c",
                                   str(api.config_file)])
    assert run.exit_code == 0, run.output
    [move] = api.store.moves(A)  # 300 of 702 hard-bounced: demoted at once
    [row] = tier_audits(api)
    assert (row["actor"], row["source"]) == ("poolwarden", "engine")
    assert row["before"] == {"tier": move.before.value}
    assert row["after"]["tier"] == move.after.value and row["after"]["rule"] == move.rule
    assert row["after"]["metrics"] == move.metrics and row["after"]["thresholds"]


def test_evaluate_judges_warmup_stages_like_serve(tmp_path: Path) -> None:
    path = config(tmp_path)  # a warming IP on a tiny schedule: 100, 300, 900 a day

    def evaluate(at: float) -> str:
        run = CliRunner().invoke(cli, ["evaluate", "--at", str(at), "-c", str(path)])
        assert run.exit_code == 0, run.output
        return run.stdout

    first = evaluate(T0)
    assert f"warm-up ip {WARM} → google: warm-up started" in first
    loaded = load_config(path)
    store = open_store(loaded.store_url)
    try:
        Engine(loaded, store, now=T0).add_events(deliveries(95, day=DAY))  # 95 of 100
        second = evaluate(T0 + 86400)
        assert "google" in second and "stage 2: cap 300 a day" in second
        t1 = T0 + 86400
        detail = Engine(loaded, store, now=t1).warmup().ip_detail(WARM, t1)
        assert detail is not None and detail["stages"]["google"] == 2
        assert Engine(loaded, store, now=t1).snapshot(t1).limits.ip_caps[
            (WARM, "google")].limit == 300
    finally:
        store.close()
    assert "warm-up" not in evaluate(T0 + 86400)  # judged already: nothing new
