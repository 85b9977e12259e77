"""Blocklist listings on the operator surfaces: ``GET /api/v1/blocklists``, the ``listed``
column of the IP list, the IP and tenant pages, operators only, and the listing alert with
the bad-neighbour ranking of the tenants on the IP before the listing."""

from __future__ import annotations

from poolwarden.core.blocklists import Finding, Status
from poolwarden.services.monitors.monitord import Monitord
from tests.http.conftest import SHARED_IP, A, Api, B, record_alerts


def list_ip(api: Api, at: float) -> None:
    """What monitord does when Spamhaus ZEN lists the shared IP (no DNS needed here)."""
    config = api.ctx.config
    monitord = Monitord(lambda: config, api.store, clock=lambda: at, in_process=True)
    finding = Finding(SHARED_IP, "spamhaus-zen", Status.LISTED, ("127.0.0.2",),
                      "127.0.0.2: SBL: spam source", "see https://check.spamhaus.org/")
    states, changes = monitord.fold([finding], config, now=at)
    api.store.save_listings(states, changes)


def test_listing_shows_on_every_surface(api: Api) -> None:
    list_ip(api, api.now - 10)
    found = api.get("/api/v1/blocklists").json()
    assert [(s["target"], s["list"]) for s in found["listed"]] == [(SHARED_IP, "spamhaus-zen")]
    [change] = found["history"]
    assert change["change"] == "listed" and change["codes"] == ["127.0.0.2"]
    assert change["consequence"].startswith("drained")
    rows = {r["address"]: r for r in api.get("/api/v1/ips").json()}
    assert rows[SHARED_IP]["listed_on"] == "spamhaus-zen"
    assert rows[SHARED_IP]["blocklisted"] is True  # drained from its pool's routes
    assert all(not r["listed_on"] for a, r in rows.items() if a != SHARED_IP)
    detail = api.get(f"/api/v1/ips/{SHARED_IP}").json()
    assert detail["blocklists"]["listed"][0]["meaning"] == "127.0.0.2: SBL: spam source"
    tenant = api.get(f"/api/v1/tenants/{A}").json()  # A rides the pool of that IP
    assert [s["target"] for s in tenant["blocklists"]["listed"]] == [SHARED_IP]
    assert api.get("/api/v1/blocklists", params={"target": "127.0.0.99"}).json() \
        == {"listed": [], "history": []}


def test_tenants_cannot_read_the_blocklist_overview(api: Api) -> None:
    list_ip(api, api.now - 10)
    assert api.get("/api/v1/blocklists", token="tenant-b").status_code == 403


def test_listing_alert_names_the_list_meaning_and_neighbours(api: Api) -> None:
    list_ip(api, api.now - 0.5)  # after the alerter's start mark (now - 1)
    rows = record_alerts(api.ctx.config, api.store, api.now)
    [alert] = [r for r in rows if r.kind == "blocklist_listed"]
    assert alert.ip == SHARED_IP and "spamhaus-zen" in alert.subject
    assert "SBL: spam source" in alert.text and "drained" in alert.text
    ranking = alert.numbers["neighbours"]
    assert ranking and ranking[0]["tenant"] == B  # the seeded bad neighbour, worst first
    assert f"{B} (harm" in alert.text
