"""``GET /api/v1/alerts`` and ``poolwarden alerts``: the alerts the real alerter recorded
(B's automatic demotion, B as a bad neighbour on the IP it shares with A), plus alerts of
every other kind written as the alerter writes them (an ingestion lag, a reaction rule on
A with its log lines, a bad-neighbour alert about A whose numbers are aggregates over B's
mail). Operators filter by kind, time, tenant and IP; a tenant token reads only its own
tier moves, suspensions and reaction rules (no aggregates of others, no log lines)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from poolwarden.main import app as cli
from poolwarden.ports import AlertRow
from tests.http.conftest import SHARED_IP, A, Api, B


def add_more(api: Api) -> None:
    at = api.now + 10
    api.store.add_alert(AlertRow(
        at=at, key="ingest_lag", kind="ingest_lag", subject="log ingestion is behind",
        text="The log ingester is 9000 bytes behind", link="http://x/", numbers={
            "lag_bytes": 9000}))
    api.store.add_alert(AlertRow(
        at=at + 1, key="reaction:r1", kind="reaction", subject="rule r1 fired",
        text="Reaction rule r1 fired for google on tenant corner-bakery", link="http://x/",
        numbers={"rule": "r1", "matches": 3, "lines": [f"to=<ann@gmail.com> {B}?"]},
        tenant=A))
    api.store.add_alert(AlertRow(
        at=at + 2, key=f"bad_neighbour:{SHARED_IP}:{A}", kind="bad_neighbour",
        subject=f"{A} is a bad neighbour on {SHARED_IP}",
        text=f"Tenant {A} caused 60% of the harm ... its 131 bad signals", link="http://x/",
        numbers={"ip_signals": 131, "tenants_on_ip": 2, "neighbour": B}, tenant=A,
        ip=SHARED_IP))


def test_operators_list_and_filter_every_alert(api: Api) -> None:
    add_more(api)
    rows = api.get("/api/v1/alerts", token="operator-read").json()
    assert [r["kind"] for r in rows] == ["bad_neighbour", "reaction", "ingest_lag",
                                         "bad_neighbour", "suspension"]
    assert rows[0]["link"] and rows[0]["numbers"] and rows[-1]["outcome"] == {}

    def kinds(**params: object) -> list[str]:
        found = api.get("/api/v1/alerts", token="operator-read", params=params)
        assert found.status_code == 200, found.text
        return [r["kind"] for r in found.json()]

    assert kinds(kind="bad_neighbour") == ["bad_neighbour", "bad_neighbour"]
    assert kinds(tenant=B) == ["bad_neighbour", "suspension"]
    assert kinds(ip=SHARED_IP) == ["bad_neighbour", "bad_neighbour"]
    assert kinds(ip="127.0.0.99") == []
    assert kinds(since=api.now + 5) == ["bad_neighbour", "reaction", "ingest_lag"]
    assert kinds(ip=SHARED_IP, tenant=B) == ["bad_neighbour"]
    assert kinds(limit=2) == ["bad_neighbour", "reaction"]
    bad = api.get("/api/v1/alerts", token="operator-read", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "limit"


def test_a_tenant_reads_only_its_own_moves_and_reactions(api: Api) -> None:
    add_more(api)
    [reaction] = api.get("/api/v1/alerts", token="tenant-a").json()
    assert (reaction["kind"], reaction["tenant"]) == ("reaction", A)
    assert reaction["numbers"] == {"rule": "r1", "matches": 3, "lines": []}
    assert reaction["outcome"] is None
    # its own bad-neighbour alert is about the shared IP: aggregates over B's mail
    assert api.get("/api/v1/alerts", token="tenant-a",
                   params={"kind": "bad_neighbour"}).json() == []
    assert api.get("/api/v1/alerts", token="tenant-a", params={"ip": SHARED_IP}).json() == []
    assert api.get("/api/v1/alerts", token="tenant-a",
                   params={"tenant": B}).status_code == 404
    [own] = api.get("/api/v1/alerts", token="tenant-b").json()
    assert (own["kind"], own["tenant"]) == ("suspension", B)  # not its bad-neighbour alert


def test_the_cli_prints_what_the_route_returns(api: Api) -> None:
    add_more(api)
    for argv, params in ((["alerts"], {}), (["alerts", "--kind", "bad_neighbour"],
                                              {"kind": "bad_neighbour"}),
                         (["alerts", "--ip", SHARED_IP, "--tenant", B],
                          {"ip": SHARED_IP, "tenant": B})):
        result = CliRunner().invoke(cli, [*argv, "--json", "-c", str(api.config_file)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == api.get("/api/v1/alerts", token="operator-read",
                                                    params=params).json()
    table = CliRunner().invoke(cli, ["alerts", "-c", str(api.config_file)])
    assert table.exit_code == 0 and f"{B} is a bad neighbour" in table.stdout
