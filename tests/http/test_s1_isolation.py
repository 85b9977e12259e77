"""S1: tenant isolation, generated from the app's route table.

Every API route must declare an access rule (``access.RULES``); a route without
one fails here. Then tenant A's token calls every route with tenant B's names (and
a random UUID), and every list filter set to B: operator routes answer 403, B's
objects answer 404 exactly like objects that do not exist, and no answer to A
holds a single B row or aggregate. docs/testing.md S1, ASVS 8.2.2, 8.4.1.
"""

from __future__ import annotations

import re
import uuid

import pytest

from poolwarden.http.access import RULES, Rule, iter_routes
from tests.http.conftest import SHARED_IP, A, Api, B

B_MARKERS = (B, "bob")  # B's name and the local part of B's recipients

WRITE_BODIES = {  # valid bodies naming B: refused before they are read
    ("POST", "/api/v1/overrides"): {"tenant": B, "tier": "good", "reason": "mine now"},
    ("POST", "/api/v1/overrides/{tenant}/clear"): {"reason": "mine now"},
    ("POST", "/api/v1/held/release"): {"tenant": B},
}


def api_routes(app) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in iter_routes(app.routes) if p.startswith("/api/v1")]


def undeclared(app) -> list[tuple[str, str]]:
    return [key for key in api_routes(app) if key not in RULES]


def fill(path: str, tenant: str, address: str = SHARED_IP) -> str:
    return path.replace("{tenant}", tenant).replace("{address}", address)


def test_every_route_declares_an_isolation_rule(api: Api) -> None:
    assert api_routes(api.app)  # the walk found the API
    assert undeclared(api.app) == []


def test_a_route_added_without_a_rule_fails_the_check(api: Api) -> None:
    api.app.router.add_api_route("/api/v1/rogue/{tenant}", lambda tenant: {"t": tenant})
    assert undeclared(api.app) == [("GET", "/api/v1/rogue/{tenant}")]


def assert_no_b(response_text: str, where: str) -> None:
    for marker in B_MARKERS:
        assert marker not in response_text, f"{where} shows {marker!r} to tenant A"


@pytest.mark.parametrize("foreign", [B, "uuid"])
def test_tenant_a_never_reaches_b(api: Api, foreign: str) -> None:
    foreign = str(uuid.uuid4()) if foreign == "uuid" else foreign
    before = (api.store.standings(), len(api.store.moves(limit=1000)))
    missing = api.get("/api/v1/tenants/no-such-tenant", token="tenant-a")
    checked = 0
    for method, path in api_routes(api.app):
        rule = RULES[(method, path)]
        url = fill(path, foreign)
        body = WRITE_BODIES.get((method, path))
        kwargs = {"json": body} if body is not None else {}
        response = api.call(method, url, token="tenant-a", **kwargs)
        where = f"{method} {url}"
        if rule in (Rule.OPERATOR_READ, Rule.OPERATOR_WRITE):
            assert response.status_code == 403, where
        elif rule is Rule.TENANT_PATH:
            assert response.status_code == 404, where
            # byte for byte what a tenant that does not exist gets: B's existence leaks nothing
            assert response.content == missing.content, where
            own = api.call(method, fill(path, A), token="tenant-a")
            assert own.status_code == 200, where
            assert_no_b(own.text, f"{method} {fill(path, A)}")
        else:
            assert rule is Rule.TENANT_FILTER
            unfiltered = api.call(method, url, token="tenant-a")
            assert unfiltered.status_code == 200, where
            assert_no_b(unfiltered.text, where)
            if any(p.name == "tenant" for p in _query_params(api, method, path)):
                filtered = api.call(method, path, token="tenant-a", params={"tenant": foreign})
                assert filtered.status_code == 404, where
                assert filtered.content == missing.content
        assert_no_b(response.text, where)
        checked += 1
    assert checked == len(api_routes(api.app))
    assert (api.store.standings(), len(api.store.moves(limit=1000))) == before


def _query_params(api: Api, method: str, path: str):
    for m, p, route in iter_routes(api.app.routes):
        if (m, p) == (method, path):
            return route.dependant.query_params
    raise AssertionError(path)


def test_lists_show_a_only_its_own_rows_and_aggregates(api: Api) -> None:
    tenants = api.get("/api/v1/tenants", token="tenant-a").json()
    assert [t["name"] for t in tenants] == [A]
    decisions = api.get("/api/v1/decisions", token="tenant-a").json()
    assert len(decisions) == 6 and {d["tenant"] for d in decisions} == {A}
    held = api.get("/api/v1/decisions", token="tenant-a", params={"action": "HOLD"}).json()
    assert held == []
    for by in ("tenant", "ip", "provider", "day"):
        rows = api.get("/api/v1/summaries", token="tenant-a", params={"by": by}).json()
        # A's 402 messages and nothing of B's 420, also on the IP they share
        assert sum(r["volume"] for r in rows) == 402, by
        assert {r["key"] for r in rows}.isdisjoint({B, "yahoo"}), by
    assert api.get("/api/v1/held", token="tenant-a").json() == [
        {"tenant": A, "held_decisions": 0, "in_queue": None}]
    assert api.get("/api/v1/overrides", token="tenant-a").json() == []


def test_caches_warmed_by_one_tenant_never_serve_the_other(api: Api) -> None:
    api.ctx.engine_ttl = 3600.0  # one Engine reused across every caller below
    for first, second, name in (("tenant-a", "tenant-b", B), ("tenant-b", "tenant-a", A)):
        warmed = api.get("/api/v1/tenants", token=first).json()
        assert len(warmed) == 1
        seen = api.get("/api/v1/tenants", token=second).json()
        assert [t["name"] for t in seen] == [name]
        detail = api.get(f"/api/v1/tenants/{name}", token=second)
        assert detail.status_code == 200 and detail.json()["name"] == name


def test_refusals_are_audited_without_showing_them_to_tenants(api: Api) -> None:
    api.get(f"/api/v1/tenants/{B}", token="tenant-a")
    api.get("/api/v1/pools", token="tenant-a")
    rows = api.get("/api/v1/audit", params={"action": "access.denied"}).json()
    assert [(r["after"]["status"], r["target"]) for r in rows] == [
        (403, "GET /api/v1/pools"), (404, f"GET /api/v1/tenants/{B}")]
    assert all(re.fullmatch(r"token:tenant-a#\d+", r["actor"]) for r in rows)
    assert api.get("/api/v1/audit", token="tenant-a").status_code == 403
