"""S2: the role matrix and field-level control. Tenant tokens call operator and write
routes (their own tenant included), a read-only operator calls every write, and a
request smuggles protected fields: 403 or 422, and nothing changes. ASVS 8.2.1,
8.2.3, 15.3.3."""

from __future__ import annotations

import pytest

from poolwarden.http.access import RULES, Rule, iter_routes
from tests.http.conftest import A, Api

BODIES = {
    ("POST", "/api/v1/overrides"): {"tenant": A, "tier": "good", "reason": "promote me"},
    ("POST", "/api/v1/overrides/{tenant}/clear"): {"reason": "unpin me"},
    ("POST", "/api/v1/held/release"): {"tenant": A},
}


def state(api: Api) -> tuple:
    return (api.store.standings(), [m.at for m in api.store.moves(limit=1000)])


def routes(api: Api, *rules: Rule) -> list[tuple[str, str]]:
    found = [(m, p) for m, p, _ in iter_routes(api.app.routes)
             if RULES.get((m, p)) in rules]
    assert found
    return found


@pytest.mark.parametrize(("token", "rules"), [
    ("tenant-a", (Rule.OPERATOR_READ, Rule.OPERATOR_WRITE)),
    ("operator-read", (Rule.OPERATOR_WRITE,)),
])
def test_roles_without_the_right_get_403_and_change_nothing(api: Api, token: str,
                                                            rules: tuple[Rule, ...]) -> None:
    before = state(api)
    for method, path in routes(api, *rules):
        url = path.replace("{tenant}", A).replace("{address}", "127.0.0.13")
        body = BODIES.get((method, path))
        response = api.call(method, url, token=token, **({"json": body} if body else {}))
        assert response.status_code == 403, (token, method, url, response.text)
        assert response.json()["error"]["message"].startswith("this needs an operator")
    assert state(api) == before


def test_writes_are_refused_before_the_body_is_used(api: Api) -> None:
    # even an invalid body gets 403, not 422: the caller learns nothing of the schema
    response = api.call("POST", "/api/v1/overrides", token="operator-read", json={"x": 1})
    assert response.status_code == 403


@pytest.mark.parametrize("field", ["pinned_by", "actor", "source", "since", "pinned",
                                   "tenant_id", "suspended", "dedicated_ip", "pool"])
def test_protected_fields_cannot_be_smuggled_into_an_override(api: Api, field: str) -> None:
    before = state(api)
    body = {"tenant": A, "tier": "good", "reason": "ok", field: "forged"}
    response = api.call("POST", "/api/v1/overrides", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert state(api) == before


def test_the_actor_is_the_token_never_the_request(api: Api) -> None:
    response = api.call("POST", "/api/v1/overrides",
                        json={"tenant": A, "tier": "good", "reason": "ok"},
                        headers={"X-User-ID": "ceo", "X-Forwarded-User": "ceo"})
    assert response.status_code == 201
    assert response.json()["actor"].startswith("token:operator-write#")
    row = api.get("/api/v1/audit", params={"action": "override.set"}).json()[0]
    assert row["actor"] == response.json()["actor"]
