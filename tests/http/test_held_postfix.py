"""Held mail through the API with a real Postfix (``postfix_lab``): the hold queue is
counted per tenant from ``postqueue -j``, release is refused while the tenant may not
send, and once it may, the API releases with ``postsuper -H`` (the route the agent
stored stays) and audits it; the mail is delivered from the tenant's own IP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.support import held, postfix, send_to_hold, start_lab
from tests.http.conftest import Api, lab_api
from tests.support.postfix_lab import PostfixLab

TENANT, SENDER = "bigretail", "api-held@bigretail.example"


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()


@pytest.fixture
def api(lab: PostfixLab) -> Iterator[Api]:
    yield from lab_api(lab)


def pin(api: Api, tier: str) -> None:
    response = api.call("POST", "/api/v1/overrides",
                        json={"tenant": TENANT, "tier": tier, "reason": "held-mail test"})
    assert response.status_code == 201, response.text


@postfix
def test_held_mail_counted_and_released_through_the_api(lab: PostfixLab, api: Api) -> None:
    version = max(lab.snapshot_versions())
    pin(api, "suspended")
    lab.wait_snapshot_after(version, timeout=10)
    try:
        results = send_to_hold(lab, SENDER, "api-held", 5)
        lab.stop_agent()  # flushes the decision log (queue ids bound to the tenant)
        lab.start_agent()
        counts = {r["tenant"]: r for r in api.get("/api/v1/held").json()}
        assert counts[TENANT]["in_queue"] == 5
        assert counts[TENANT]["held_decisions"] >= 5
        refused = api.call("POST", "/api/v1/held/release", json={"tenant": TENANT})
        assert refused.status_code == 409 and "suspended" in refused.text
        assert len(held(lab, SENDER)) == 5
    finally:
        version = max(lab.snapshot_versions())
        pin(api, "risky")
        lab.wait_snapshot_after(version, timeout=10)
    dry = api.call("POST", "/api/v1/held/release", json={"tenant": TENANT, "dry_run": True})
    assert dry.status_code == 200 and dry.json()["released"] == 0
    assert sorted(dry.json()["queue_ids"]) == sorted(held(lab, SENDER))
    done = api.call("POST", "/api/v1/held/release", json={"tenant": TENANT})
    assert done.status_code == 200 and done.json()["released"] == 5
    ids = [r.message_id for r in results]
    deliveries = lab.wait_delivered(5, timeout=30, message_ids=ids)
    assert {d.peer for d in deliveries} == {"127.0.0.21"}
    assert held(lab, SENDER) == []
    row = api.get("/api/v1/audit", params={"action": "held.release"}).json()[0]
    assert row["target"] == f"tenant:{TENANT}" and row["before"] == {"held": 5}
