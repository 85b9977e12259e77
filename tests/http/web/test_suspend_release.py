"""The suspend and release-hold forms on the tenant page, server side without Postfix (the
release itself, against a real Postfix, is in ``test_release_postfix``): suspending pins the
tier with a required reason and one audit row; releasing is refused with a clear message
while the tenant is suspended, and with another when no Postfix is configured; neither
refusal changes anything."""

from __future__ import annotations

import html

import httpx
import pytest

from poolwarden.ports import DecisionRow
from poolwarden.services.queries.context import NodeContext
from tests.http.web.support import DEMOTED, NOW, csrf_of, login

pytestmark = pytest.mark.anyio


async def form_token(client: httpx.AsyncClient) -> str:
    return csrf_of((await client.get(f"/tenants/{DEMOTED}")).text)


async def test_suspend_needs_a_reason_pins_the_tier_and_is_audited(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    await login(client, "olivia")
    page = (await client.get(f"/tenants/{DEMOTED}")).text
    assert 'id="suspend-form"' in page
    token = csrf_of(page)
    for why in ("", "   "):
        r = await client.post(f"/tenants/{DEMOTED}/suspend",
                              data={"why": why, "csrf_token": token})
        assert r.status_code == 400 and "why: a suspension needs a reason" in r.text
    assert ctx.store.audit() == [] and not ctx.engine().standings()[DEMOTED].pinned

    before = ctx.engine().standings()[DEMOTED].tier.value
    r = await client.post(f"/tenants/{DEMOTED}/suspend",
                          data={"why": "spam-trap storm, ticket 7", "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == f"/tenants/{DEMOTED}?done=suspended"
    standing = ctx.engine().standings()[DEMOTED]
    assert (standing.tier.value, standing.pinned, standing.pinned_by) == (
        "suspended", True, "user:olivia")
    [row] = ctx.store.audit()
    assert (row.actor, row.source, row.action, row.target) == (
        "user:olivia", "dashboard", "override.set", f"tenant:{DEMOTED}")
    assert row.before["tier"] == before and not row.before["pinned"]
    assert (row.after["tier"], row.after["pinned"], row.after["reason"]) == (
        "suspended", True, "spam-trap storm, ticket 7")
    move = ctx.store.moves(DEMOTED)[0]
    assert (move.after.value, move.source, move.reason) == (
        "suspended", "dashboard", "spam-trap storm, ticket 7")

    shown = (await client.get(r.headers["location"])).text
    assert "Tenant suspended" in shown
    assert 'id="suspend-form"' not in shown and 'id="clear-form"' in shown
    r = await client.post(f"/tenants/{DEMOTED}/suspend",
                          data={"why": "again", "csrf_token": csrf_of(shown)})
    assert r.status_code == 409 and "suspended already" in r.text
    assert len(ctx.store.audit()) == 1


async def test_release_is_refused_while_suspended_and_without_postfix(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    # HOLD decisions as the routing agent logs them while a tenant is suspended
    ctx.store.add_decisions([
        DecisionRow(at=NOW - 60 * i, node="n1", instance=f"h{i}", tenant=DEMOTED,
                    recipient=f"r{i}@gmail.com", action="HOLD", ip=None, pool=None,
                    rule="tier:suspended", snapshot_version=1) for i in range(4)])
    await login(client, "olivia")
    token = await form_token(client)
    assert (await client.post(f"/tenants/{DEMOTED}/suspend",
                              data={"why": "held for review", "csrf_token": token})
            ).status_code == 303
    page = (await client.get(f"/tenants/{DEMOTED}")).text
    held = page[page.index('id="held"'):]
    held = held[:held.index("</section>")]
    assert "4 recent routing decision(s) put its mail on hold" in held
    # no Postfix configured: nothing in a hold queue to release, so no button
    assert 'id="release-form"' not in held and "hold queue" not in held
    audited = len(ctx.store.audit())

    r = await client.post(f"/tenants/{DEMOTED}/release-held", data={"csrf_token": token})
    assert r.status_code == 409
    text = html.unescape(r.text)
    assert f"Not released: {DEMOTED} is suspended, so its mail stays held" in text
    assert "Move it to another tier first" in text

    assert (await client.post(f"/tenants/{DEMOTED}/override", data={
        "tier": "risky", "why": "reviewed", "csrf_token": token})).status_code == 303
    r = await client.post(f"/tenants/{DEMOTED}/release-held", data={"csrf_token": token})
    assert r.status_code == 503 and "no Postfix to release from" in r.text
    actions = [a.action for a in ctx.store.audit()]
    assert len(actions) == audited + 1 and "held.release" not in actions


async def test_tenant_user_sees_its_held_mail_but_no_form(client: httpx.AsyncClient,
                                                         ctx: NodeContext) -> None:
    ctx.store.add_decisions([
        DecisionRow(at=NOW - 30, node="n1", instance="h", tenant=DEMOTED,
                    recipient="r@gmail.com", action="HOLD", ip=None, pool=None,
                    rule="tier:suspended", snapshot_version=1)])
    await login(client, "nina")  # DEMOTED's own user
    page = (await client.get(f"/tenants/{DEMOTED}")).text
    assert "1 recent routing decision(s) put its mail on hold" in page
    for form in ("suspend-form", "release-form", "override-form"):
        assert f'id="{form}"' not in page
