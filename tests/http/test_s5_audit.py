"""S5: one append-only audit row per write, whoever makes it: an override through the
API and through the CLI, and an automatic demotion (with its numbers and thresholds);
the API cannot change or delete a row, and the stores offer no way to. ASVS 16.2.1,
16.3.2, 16.4.2. (Dashboard overrides are covered with the dashboard's tests.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import SqlStore
from poolwarden.core.events import EventKind
from poolwarden.main import app as cli
from poolwarden.services.reputation.engine import Engine
from poolwarden.testing.builders import many
from tests.http.conftest import A, Api

C = "greenleaf-crm"  # demoted automatically below


def run(api: Api, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "-c", str(api.config_file)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_api_cli_and_engine_writes_each_leave_one_row(api: Api) -> None:
    assert api.get("/api/v1/audit").json() == []
    made = api.call("POST", "/api/v1/overrides",
                    json={"tenant": A, "tier": "good", "reason": "contract signed"})
    assert made.status_code == 201
    run(api, "override", A, "--tier", "risky", "--why", "spike on monday", "--actor", "alice")
    Engine(api.ctx.config, api.store, now=api.now).add_events([
        *many(EventKind.DELIVERED, 300, tenant=C, ip="127.0.0.14", time=api.now - 60),
        *many(EventKind.HARD_BOUNCE, 60, tenant=C, ip="127.0.0.14", time=api.now - 60)])
    assert "no tier changes" not in run(api, "evaluate", "--at", str(api.now))

    rows = api.get("/api/v1/audit", params={"limit": 10}).json()
    assert [(r["source"], r["action"], r["target"]) for r in rows] == [
        ("engine", "tier.move", f"tenant:{C}"),
        ("cli", "override.set", f"tenant:{A}"),
        ("api", "override.set", f"tenant:{A}")]
    engine_row, cli_row, api_row = rows
    assert api_row["actor"] == made.json()["actor"]
    assert (api_row["before"]["tier"], api_row["after"]["tier"]) == ("new", "good")
    assert api_row["after"]["pinned_why"] == "contract signed"
    assert cli_row["actor"] == "cli:alice"
    assert (cli_row["before"]["tier"], cli_row["after"]["tier"]) == ("good", "risky")
    assert engine_row["actor"] == "poolwarden" and engine_row["before"] == {"tier": "new"}
    after = engine_row["after"]
    assert after["rule"] and after["reason"]
    assert after["metrics"] and after["thresholds"]  # the numbers and what they were held to
    assert all(r["at"] > 0 and r["id"] for r in rows)
    # the CLI shows the same rows
    assert '"engine"' in run(api, "audit", "--json")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_the_api_cannot_change_the_audit_log(api: Api, method: str) -> None:
    api.call("POST", "/api/v1/overrides", json={"tenant": A, "tier": "good", "reason": "r"})
    before = api.get("/api/v1/audit").json()
    response = api.call(method, "/api/v1/audit", json={"id": before[0]["id"], "actor": "x"})
    assert response.status_code == 405
    assert api.call(method, f"/api/v1/audit/{before[0]['id']}").status_code in (404, 405)
    assert api.get("/api/v1/audit").json() == before


@pytest.mark.parametrize("store_type", [SqlStore, MemoryStore])
def test_the_stores_offer_no_update_or_delete_of_audit_rows(store_type: type) -> None:
    names = {n for n in dir(store_type) if "audit" in n.lower()}
    assert names == {"add_audit", "audit"}


def test_refused_requests_are_in_the_log(api: Api) -> None:
    assert api.call("POST", "/api/v1/overrides", token="operator-read",
                    json={"tenant": A, "tier": "good", "reason": "x"}).status_code == 403
    rows = api.get("/api/v1/audit", params={"action": "access.denied"}).json()
    assert len(rows) == 1
    assert rows[0]["target"] == "POST /api/v1/overrides"
    assert rows[0]["after"]["role"] == "operator-read"
