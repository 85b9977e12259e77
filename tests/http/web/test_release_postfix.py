"""The dashboard's suspend and release-hold forms against a real Postfix (``postfix_lab``, the
pattern of the API's held-mail test): suspending through the form makes the routing agent
hold the tenant's mail; the tenant page counts it in Postfix's hold queue; the release form
is refused while the tenant is suspended (nothing released, nothing audited); once the tenant
is moved to risky the form releases with ``postsuper -H``, the mail is delivered from the
tenant's own IP, and one audit row (source dashboard) says who released what."""

from __future__ import annotations

import html
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.http.app import create_app
from poolwarden.services.access import auth
from poolwarden.services.queries.context import NodeContext
from tests.e2e.support import held, postfix, send_to_hold, start_lab
from tests.http.web.support import PASSWORD, csrf_of, login
from tests.support.postfix_lab import PostfixLab

pytestmark = pytest.mark.anyio

TENANT, SENDER = "bigretail", "web-held@bigretail.example"
BIGRETAIL_IP = "127.0.0.21"  # bigretail's dedicated IP in the example configuration


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()


@pytest.fixture
def lab_ctx(lab: PostfixLab) -> Iterator[NodeContext]:
    config = load_config(lab.config)
    store = open_store(config.store_url)
    auth.create_user(store, name="olivia", password=PASSWORD, role="operator-write",
                     tenant=None, now=time.time(),
                     known_tenants={t.name for t in config.inventory.tenants})
    ctx = NodeContext(loaded_config=config, store=store, engine_ttl=0,
                     postfix_config_dir=str(lab.etc))
    try:
        yield ctx
    finally:
        store.close()


@pytest.fixture
async def lab_client(lab_ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(lab_ctx)),
                                 base_url="http://127.0.0.1:8025") as c:
        yield c


async def post_form(client: httpx.AsyncClient, action: str, **fields: str) -> httpx.Response:
    """Submit a form of the tenant page the way the browser does (its token included)."""
    token = csrf_of((await client.get(f"/tenants/{TENANT}")).text)
    return await client.post(f"/tenants/{TENANT}/{action}",
                             data={**fields, "csrf_token": token})


def releases(ctx: NodeContext) -> list[object]:
    return [r for r in ctx.store.audit() if r.action == "held.release"]


@postfix
async def test_suspend_then_release_held_mail_through_the_dashboard(
        lab: PostfixLab, lab_ctx: NodeContext, lab_client: httpx.AsyncClient) -> None:
    assert (await login(lab_client, "olivia")).status_code == 303
    version = max(lab.snapshot_versions())
    r = await post_form(lab_client, "suspend", why="complaint storm, ticket 99")
    assert r.status_code == 303 and r.headers["location"].endswith("done=suspended")
    lab.wait_snapshot_after(version, timeout=10)
    results = send_to_hold(lab, SENDER, "web-held", 3)
    lab.stop_agent()  # flushes the decision log (queue ids bound to the tenant)
    lab.start_agent()

    page = (await lab_client.get(f"/tenants/{TENANT}")).text
    assert 'id="held-in-queue">3<' in page
    assert 'id="release-form"' in page and 'id="release-blocked"' in page
    refused = await post_form(lab_client, "release-held")
    assert refused.status_code == 409
    assert f"Not released: {TENANT} is suspended" in html.unescape(refused.text)
    assert len(held(lab, SENDER)) == 3 and releases(lab_ctx) == []

    version = max(lab.snapshot_versions())
    r = await post_form(lab_client, "override", tier="risky", why="storm over")
    assert r.status_code == 303
    lab.wait_snapshot_after(version, timeout=10)
    queue_ids = sorted(held(lab, SENDER))
    r = await post_form(lab_client, "release-held")
    assert r.status_code == 303 and r.headers["location"].endswith("done=released")
    deliveries = lab.wait_delivered(3, timeout=30, message_ids=[x.message_id for x in results])
    assert {d.peer for d in deliveries} == {BIGRETAIL_IP}  # the route stored with each message
    assert held(lab, SENDER) == []
    [row] = releases(lab_ctx)
    assert (row.actor, row.source, row.target) == ("user:olivia", "dashboard",
                                                   f"tenant:{TENANT}")
    assert row.before == {"held": 3} and sorted(row.after["released"]) == queue_ids
    shown = (await lab_client.get(r.headers["location"])).text
    assert "Held mail released" in shown and 'id="release-form"' not in shown
    actions = [(a.action, (a.after or {}).get("tier")) for a in reversed(lab_ctx.store.audit())]
    assert actions == [("override.set", "suspended"), ("override.set", "risky"),
                       ("held.release", None)]
