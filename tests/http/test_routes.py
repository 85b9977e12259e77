"""Every API route, called in process as an operator: status, shape and the numbers."""

from __future__ import annotations

from poolwarden.http.access import iter_routes
from tests.http.conftest import SHARED_IP, A, Api, B

# (method, path template) -> a request exercising it; test_every_route_is_exercised
# fails when a route is added without a case here
CASES: dict[tuple[str, str], tuple[str, dict]] = {
    ("GET", "/api/v1/tenants"): ("/api/v1/tenants", {}),
    ("GET", "/api/v1/tenants/{tenant}"): (f"/api/v1/tenants/{B}", {}),
    ("GET", "/api/v1/tenants/{tenant}/moves"): (f"/api/v1/tenants/{B}/moves", {}),
    ("GET", "/api/v1/pools"): ("/api/v1/pools", {}),
    ("GET", "/api/v1/ips"): ("/api/v1/ips", {}),
    ("GET", "/api/v1/ips/{address}"): (f"/api/v1/ips/{SHARED_IP}", {}),
    ("GET", "/api/v1/ips/{address}/neighbours"): (f"/api/v1/ips/{SHARED_IP}/neighbours", {}),
    ("GET", "/api/v1/decisions"): ("/api/v1/decisions", {}),
    ("GET", "/api/v1/summaries"): ("/api/v1/summaries", {}),
    ("GET", "/api/v1/overrides"): ("/api/v1/overrides", {}),
    ("POST", "/api/v1/overrides"): ("/api/v1/overrides",
                                    {"json": {"tenant": A, "tier": "good", "reason": "vip"}}),
    ("POST", "/api/v1/overrides/{tenant}/clear"): (f"/api/v1/overrides/{A}/clear",
                                                   {"json": {"reason": "done"}}),
    ("GET", "/api/v1/held"): ("/api/v1/held", {}),
    ("POST", "/api/v1/held/release"): ("/api/v1/held/release",
                                       {"json": {"tenant": A, "dry_run": True}}),
    ("GET", "/api/v1/alerts"): ("/api/v1/alerts", {"params": {"kind": "suspension"}}),
    ("GET", "/api/v1/audit"): ("/api/v1/audit", {}),
    ("GET", "/api/v1/blocklists"): ("/api/v1/blocklists", {}),
    ("GET", "/api/v1/tenants/{tenant}/domains"): (f"/api/v1/tenants/{A}/domains", {}),
    ("GET", "/api/v1/dmarc/reports"): ("/api/v1/dmarc/reports", {}),
}


def api_routes(app) -> list[tuple[str, str]]:
    return sorted((method, path) for method, path, _ in iter_routes(app.routes)
                  if path.startswith("/api/v1"))


def test_every_route_is_exercised(api: Api) -> None:
    assert set(api_routes(api.app)) == set(CASES)


def test_every_route_answers_an_operator(api: Api) -> None:
    # pin first so that the clear has something to clear
    for key in sorted(CASES, key=lambda k: k != ("POST", "/api/v1/overrides")):
        path, kwargs = CASES[key]
        response = api.call(key[0], path, **kwargs)
        if key == ("POST", "/api/v1/held/release"):
            # no Postfix configured in this test: a clear refusal, never a 500
            assert response.status_code == 503, response.text
            assert "postfix" in response.json()["error"]["message"].lower()
            continue
        assert response.status_code in (200, 201), (key, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"


def test_tenants_show_rates_with_samples_and_wilson_bounds(api: Api) -> None:
    rows = {r["name"]: r for r in api.get("/api/v1/tenants").json()}
    assert set(rows) >= {A, B}
    b = rows[B]
    assert b["tier"] == "off-platform"
    assert b["volume"] == 420  # 300 delivered + 120 hard bounces
    rate = b["hard_bounce_rate"]
    assert rate["count"] == 120 and rate["sample"] == 420
    assert rate["low"] <= rate["value"] <= rate["high"]
    assert "advised" in b["advice"] and b["advice"]["reasons"]


def test_tenant_detail_per_provider_and_explained_moves(api: Api) -> None:
    detail = api.get(f"/api/v1/tenants/{B}").json()
    assert set(detail["per_provider"]) == {"yahoo"}
    assert detail["per_provider"]["yahoo"]["hard_bounce_rate"]["sample"] == 420
    move = detail["moves"][0]
    assert move["after"] == "off-platform" and move["rule"] == "hard_bounce_off_platform"
    assert move["metrics"] and move["thresholds"]  # the numbers and what they were held to
    moves = api.get(f"/api/v1/tenants/{B}/moves").json()
    assert moves == detail["moves"]


def test_unknown_tenant_and_ip_are_404(api: Api) -> None:
    assert api.get("/api/v1/tenants/nobody").status_code == 404
    assert api.get("/api/v1/tenants/nobody/moves").status_code == 404
    assert api.get("/api/v1/ips/192.0.2.99").status_code == 404
    assert api.get("/api/v1/ips/192.0.2.99/neighbours").status_code == 404


def test_pools_list_members_and_riders(api: Api) -> None:
    pools = {p["name"]: p for p in api.get("/api/v1/pools").json()}
    assert SHARED_IP in pools["shared-new"]["ips"]
    assert A in pools["shared-new"]["tenants"]
    assert B not in pools["shared-new"]["tenants"]  # off-platform: rides no pool
    assert pools["shared-new"]["restrictions"] == []


def test_ip_detail_ranks_bad_neighbours(api: Api) -> None:
    detail = api.get(f"/api/v1/ips/{SHARED_IP}").json()
    assert detail["shared"] is True
    ranking = detail["neighbours"]
    assert [n["tenant"] for n in ranking] == [B, A]  # B caused most of the bounces
    assert ranking[0]["bounce_share"] > 0.95
    assert api.get(f"/api/v1/ips/{SHARED_IP}/neighbours").json() == ranking


def test_decisions_filter_by_tenant_action_and_since(api: Api) -> None:
    everything = api.get("/api/v1/decisions").json()
    assert len(everything) == 12
    held = api.get("/api/v1/decisions", params={"action": "hold"}).json()
    assert len(held) == 3 and {d["tenant"] for d in held} == {B}
    mine = api.get("/api/v1/decisions", params={"tenant": A, "limit": 2}).json()
    assert len(mine) == 2 and {d["tenant"] for d in mine} == {A}
    recent = api.get("/api/v1/decisions", params={"since": api.now - 3600 + 4}).json()
    assert len(recent) == 4 and min(d["at"] for d in recent) >= api.now - 3600 + 4


def test_summaries_per_tenant_ip_provider_day(api: Api) -> None:
    def by(what: str, **params: str) -> dict[str, dict]:
        rows = api.get("/api/v1/summaries", params={"by": what, **params}).json()
        return {r["key"]: r for r in rows}

    tenants = by("tenant")
    assert tenants[A]["volume"] == 402 and tenants[B]["complaints"] == 9
    assert by("ip")[SHARED_IP]["volume"] == 822
    assert by("ip", tenant=A)[SHARED_IP]["volume"] == 402  # A's share of the IP only
    providers = by("provider")
    assert providers["google"]["volume"] == 402 and providers["yahoo"]["volume"] == 420
    days = by("day")
    assert sum(r["volume"] for r in days.values()) == 822
    assert all(len(key) == 10 for key in days)  # YYYY-MM-DD
    assert api.get("/api/v1/summaries", params={"by": "week"}).status_code == 422


def test_override_set_list_clear_and_audit(api: Api) -> None:
    response = api.call("POST", "/api/v1/overrides",
                        json={"tenant": A, "tier": "good", "reason": "known sender"})
    assert response.status_code == 201
    assert response.json()["after"] == "good" and response.json()["pinned"] is True
    pins = api.get("/api/v1/overrides").json()
    assert [(p["tenant"], p["tier"], p["pinned_why"]) for p in pins] == [
        (A, "good", "known sender")]
    cleared = api.call("POST", f"/api/v1/overrides/{A}/clear", json={"reason": "over"})
    assert cleared.status_code == 200 and cleared.json()["tier"] == "good"
    assert api.get("/api/v1/overrides").json() == []
    again = api.call("POST", f"/api/v1/overrides/{A}/clear", json={"reason": "over"})
    assert again.status_code == 409
    rows = api.get("/api/v1/audit", params={"target": f"tenant:{A}"}).json()
    assert [r["action"] for r in rows] == ["override.clear", "override.set"]


def test_override_needs_a_known_tenant_tier_and_reason(api: Api) -> None:
    bad = api.call("POST", "/api/v1/overrides",
                   json={"tenant": A, "tier": "platinum", "reason": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "tier"
    empty = api.call("POST", "/api/v1/overrides", json={"tenant": A, "tier": "good",
                                                         "reason": ""})
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "reason"
    unknown = api.call("POST", "/api/v1/overrides",
                       json={"tenant": "nobody", "tier": "good", "reason": "x"})
    assert unknown.status_code == 404
    assert api.get("/api/v1/overrides").json() == []


def test_held_counts_come_from_the_decision_log(api: Api) -> None:
    rows = api.get("/api/v1/held").json()
    assert rows == [{"tenant": B, "held_decisions": 3, "in_queue": None}]


def test_release_refuses_while_the_tenant_may_not_send(api: Api) -> None:
    response = api.call("POST", "/api/v1/held/release", json={"tenant": B})
    assert response.status_code == 409
    assert "off-platform" in response.json()["error"]["message"]
    assert api.call("POST", "/api/v1/held/release",
                    json={"tenant": "nobody"}).status_code == 404


def test_openapi_schema_is_published_and_precise(api: Api) -> None:
    schema = api.get("/api/v1/openapi.json", token=None).json()
    paths = schema["paths"]
    assert "/api/v1/tenants/{tenant}" in paths
    assert not any(p.startswith("/static") or p == "/metrics" for p in paths)
    detail = schema["components"]["schemas"]["TenantDetail"]["properties"]
    assert {"per_provider", "advice", "moves"} <= set(detail)
    rate = schema["components"]["schemas"]["Rate"]["properties"]
    assert {"sample", "low", "high"} <= set(rate)
    for path, ops in paths.items():
        for op in ops.values():
            assert "x-access" in op, path
            for status in ("401", "403", "404", "422", "500"):  # errors in their real shape
                ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorOut"), (path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    # and the shape is what an error really looks like
    error = api.get("/api/v1/decisions", params={"limit": 0}).json()
    assert set(error) == {"error"} and {"message", "field"} <= set(error["error"])


def test_domains_show_findings_and_dmarc_shares(api: Api) -> None:
    (view,) = api.get(f"/api/v1/tenants/{A}/domains").json()
    assert (view["tenant"], view["domain"], view["status"]) == (A, "cornerbakery.example", "ok")
    assert view["roles"] == ["from", "mailfrom"]
    (finding,) = view["findings"]
    assert finding["record"] == f"v=spf1 ip4:{SHARED_IP} -all"
    dmarc = view["dmarc"]
    assert dmarc["ours"]["messages"] == 50 and dmarc["ours"]["dkim_aligned"] == 50
    assert dmarc["by_route"]["shared-new"]["spf_aligned_share"] == 0.0
    assert list(dmarc["foreign_sources"]) == ["203.0.113.5"]
    reports = api.get("/api/v1/dmarc/reports", token="operator-read").json()
    assert [r["status"] for r in reports] == ["rejected", "stored", "stored"]
    assert "not well-formed" in reports[0]["reason"]
    assert api.get("/api/v1/dmarc/reports", token="tenant-a").status_code == 403
    assert api.get(f"/api/v1/tenants/{B}/domains", token="tenant-a").status_code == 404
