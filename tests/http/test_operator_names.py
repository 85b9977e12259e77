"""Tenants never see operators' identities (S1-style, generated from the route table).

Operators pin and move tenant A through the API (a token) and the CLI (a login
name), and the real alerter records those moves. Then every API route a tenant
token may call is called for A twice: as an operator, to find which routes return
an operator's identity (they must include the tenant, moves, overrides and alerts
routes: a new route returning actors joins the set by itself), and as A's token,
whose answers must hold no identity at all, only "operator". Automatic moves keep
their actor and explanation (tenant B's demotion, seen by B). The dashboard shows A's
user the same thing (both surfaces use ``services.queries.tenant_view``).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from typer.testing import CliRunner

from poolwarden.http.access import RULES, Rule, iter_routes
from poolwarden.main import app as cli
from poolwarden.services.access import auth
from tests.http.conftest import SHARED_IP, A, Api, B, record_alerts
from tests.http.web.support import PASSWORD, login

CLI_ACTOR = "olga-the-operator"
ACTOR_ROUTES = {"/api/v1/tenants/{tenant}", "/api/v1/tenants/{tenant}/moves",
                "/api/v1/overrides", "/api/v1/alerts"}


def tenant_routes(api: Api) -> list[str]:
    return sorted(p for m, p, _ in iter_routes(api.app.routes)
                  if m == "GET" and p.startswith("/api/v1")
                  and RULES[(m, p)] in (Rule.TENANT_PATH, Rule.TENANT_FILTER))


def operators_act_on_a(api: Api) -> set[str]:
    """A pinned by the API, cleared and pinned again by the CLI; alerts recorded. The
    operator identities now in the store."""
    api.ctx.clock = time.time  # the CLI reads the real clock: keep one timeline
    assert api.call("POST", "/api/v1/overrides",
                    json={"tenant": A, "tier": "risky", "reason": "list hygiene review"}
                    ).status_code == 201
    for argv in (["--clear", "--why", "reviewed"], ["--tier", "good", "--why", "vip"]):
        result = CliRunner().invoke(cli, ["override", A, *argv, "--actor", CLI_ACTOR,
                                          "-c", str(api.config_file)])
        assert result.exit_code == 0, result.output
    record_alerts(api.ctx.loaded_config, api.store, time.time() + 1)
    names = {m.actor for m in api.store.moves(A) if m.source != "engine"}
    assert names == {CLI_ACTOR, f"token:operator-write#{token_id(api, 'operator-write')}"}
    return names


def token_id(api: Api, name: str) -> int:
    return next(t.id for t in api.store.tokens() if t.name == name and t.id is not None)


def test_tenant_tokens_see_operator_for_every_operator_identity(api: Api) -> None:
    names = operators_act_on_a(api)
    showing: set[str] = set()
    for path in tenant_routes(api):
        url = path.replace("{tenant}", A).replace("{address}", SHARED_IP)
        as_operator = api.get(url, token="operator-read")
        as_tenant = api.get(url, token="tenant-a")
        assert as_operator.status_code == as_tenant.status_code == 200, url
        if any(n in as_operator.text for n in names):
            showing.add(path)
            assert '"operator' in as_tenant.text, url  # the field is there, the name is not
        for name in names:
            assert name not in as_tenant.text, f"{url} shows {name!r} to tenant A"
    assert showing == ACTOR_ROUTES


def test_what_the_tenant_reads_instead(api: Api) -> None:
    operators_act_on_a(api)
    detail = api.get(f"/api/v1/tenants/{A}", token="tenant-a").json()
    assert detail["pinned"] and detail["pinned_by"] == "operator"
    assert detail["pinned_why"] == "vip"  # the reason stays
    assert [(m["actor"], m["source"], m["reason"]) for m in detail["moves"]] == [
        ("operator", "cli", "vip"), ("operator", "cli", "reviewed"),
        ("operator", "api", "list hygiene review")]
    assert api.get(f"/api/v1/tenants/{A}/moves", token="tenant-a").json() == detail["moves"]
    [pin] = api.get("/api/v1/overrides", token="tenant-a").json()
    assert (pin["tenant"], pin["pinned_by"]) == (A, "operator")
    alerts = api.get("/api/v1/alerts", token="tenant-a").json()
    assert len(alerts) == 3 and {a["tenant"] for a in alerts} == {A}
    assert all(a["numbers"]["actor"] == "operator" and " by operator (" in a["text"]
               and a["outcome"] is None for a in alerts)
    # the operator reads the same rows with the names
    own = api.get("/api/v1/alerts", params={"tenant": A}).json()
    assert {a["numbers"]["actor"] for a in own} == {
        CLI_ACTOR, f"token:operator-write#{token_id(api, 'operator-write')}"}


def test_automatic_moves_keep_their_actor_and_explanation(api: Api) -> None:
    moves = api.get(f"/api/v1/tenants/{B}/moves", token="tenant-b").json()
    assert moves == api.get(f"/api/v1/tenants/{B}/moves", token="operator-read").json()
    [move] = moves
    assert (move["actor"], move["source"]) == ("poolwarden", "engine")
    assert move["metrics"] and move["thresholds"] and "hard bounce rate" in move["reason"]
    [alert] = api.get("/api/v1/alerts", token="tenant-b").json()
    assert alert["kind"] == "suspension" and " automatically, rule " in alert["text"]
    assert alert["numbers"]["actor"] == "poolwarden" and alert["numbers"]["metrics"]


def test_the_dashboard_shows_a_tenant_user_the_same(api: Api) -> None:
    names = operators_act_on_a(api)
    auth.create_user(api.store, name="tess", password=PASSWORD, role="tenant", tenant=A,
                     now=time.time(), known_tenants={A, B})
    auth.create_user(api.store, name="rita", password=PASSWORD, role="operator-read",
                     tenant=None, now=time.time())

    async def page(user: str) -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                     base_url="http://127.0.0.1:8025") as client:
            assert (await login(client, user)).status_code == 303
            response = await client.get(f"/tenants/{A}")
            assert response.status_code == 200
            return response.text

    operator_page, tenant_page = asyncio.run(page("rita")), asyncio.run(page("tess"))
    assert all(name in operator_page for name in names)
    assert not any(name in tenant_page for name in names)
    assert "pinned by operator: vip" in tenant_page and "by operator (cli, rule" in tenant_page
    assert tenant_page.count('<td>operator <span class="muted">(') == 3  # the move table
