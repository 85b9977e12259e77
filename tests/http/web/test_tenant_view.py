"""What the tenant and IP pages add beyond the numbers: the reaction rules in force (fired by
the real ``ReactionService`` from provider replies, stored in the real store) with their
scope, action, since/until and the numbers behind them; and, in a tenant user's view, the
operators who moved or pinned the tenant shown only as "operator" while automatic moves keep
their actor and explanation."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from poolwarden.core.model import Tier
from poolwarden.core.reaction import Activation, Observation
from poolwarden.http.web.render import _when
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.reputation.engine import DAY
from poolwarden.services.reputation.reaction import ReactionService
from tests.http.web.support import DEMOTED, NOW, login

pytestmark = pytest.mark.anyio

SHARED_IP = "127.0.0.13"
OTHER = "corner-bakery"  # tess's tenant


def section(page: str, anchor: str) -> str:
    """The text of one section of a page: tags dropped, runs of white space as one."""
    start = page.index(f'id="{anchor}"')
    text = re.sub(r"<[^>]+>", " ", page[page.index(">", start) + 1:
                                       page.index("</section>", start)])
    return " ".join(html.unescape(text).split())


def fire(ctx: NodeContext, at: float, replies: list[tuple[str, str | None, str, str]]
         ) -> list[Activation]:
    """Feed provider replies (provider, ip, tenant, reply) at ``at`` + i seconds to the
    configuration's rules, as the log ingester does; the activations stored."""
    service = ReactionService(ctx.config, ctx.store, clock=lambda: at + 60)
    return service.observe([
        Observation(time=at + i, provider=provider, ip=ip, tenant=tenant, status="deferred",
                    code=None, reply=reply, queue_id=f"Q{i}", recipient=f"u{i}@gmail.com")
        for i, (provider, ip, tenant, reply) in enumerate(replies)])


UNSOLICITED = ("421-4.7.0 Our system has detected that this message is suspicious due to "
               "the nature of the content")
UNUSUAL_RATE = "421-4.7.28 Our system has detected an unusual rate of unsolicited mail"
TS04 = "421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints"


@pytest.fixture
def activations(ctx: NodeContext) -> dict[str, Activation]:
    """In force at NOW: a tenant-scoped pause of DEMOTED at Google, an IP-scoped pause of
    the shared IP its replies triggered, and OTHER's own tenant-scoped pause. Over by NOW:
    a Yahoo pause of the shared IP from a day earlier."""
    fired = fire(ctx, NOW - DAY, [("yahoo", SHARED_IP, DEMOTED, TS04)])
    fired += fire(ctx, NOW - 600, [("google", SHARED_IP, DEMOTED, UNSOLICITED)] * 5
                  + [("google", SHARED_IP, DEMOTED, UNUSUAL_RATE)] * 2
                  + [("google", "127.0.0.14", OTHER, UNSOLICITED)] * 5)
    by_rule = {(a.rule, a.tenant): a for a in fired}
    assert set(by_rule) == {("yahoo-ts04", DEMOTED), ("google-message-unsolicited", DEMOTED),
                            ("google-ip-unusual-rate", DEMOTED),
                            ("google-message-unsolicited", OTHER)}
    return {"expired": by_rule["yahoo-ts04", DEMOTED],
            "tenant": by_rule["google-message-unsolicited", DEMOTED],
            "ip": by_rule["google-ip-unusual-rate", DEMOTED],
            "other": by_rule["google-message-unsolicited", OTHER]}


async def test_tenant_page_lists_the_rules_in_force_with_their_numbers(
        client: httpx.AsyncClient, activations: dict[str, Activation]) -> None:
    await login(client, "rita")
    rules = section((await client.get(f"/tenants/{DEMOTED}")).text, "reactions")
    tenant, ip = activations["tenant"], activations["ip"]
    assert f"tenant {DEMOTED} → google" in rules and f"IP {SHARED_IP} → google" in rules
    for a in (tenant, ip):
        assert a.rule in rules and a.why in rules  # which rule, and why (its numbers)
        assert _when(a.started_at) in rules and _when(a.ends_at) in rules  # since / until
    assert "5 matching replies (trigger: 5 within 1h)" in rules
    assert "2 matching replies (trigger: 2 within 1h)" in rules
    assert "pause (active)" in rules
    assert tenant.lines[0] in rules  # operators get the log lines behind it
    assert "yahoo-ts04" not in rules  # over before NOW: no longer in force
    assert OTHER not in rules  # another tenant's activation stays on its own page

    client.cookies.clear()
    await login(client, "tess")  # OTHER's user sees its own rule, none of DEMOTED's
    own = section((await client.get(f"/tenants/{OTHER}")).text, "reactions")
    assert "google-message-unsolicited" in own and activations["other"].why in own
    assert DEMOTED not in own and "google-ip-unusual-rate" not in own
    assert activations["other"].lines[0] not in own  # raw log lines are for operators


async def test_ip_page_lists_the_rules_in_force_on_it(
        client: httpx.AsyncClient, ctx: NodeContext,
        activations: dict[str, Activation]) -> None:
    await login(client, "rita")
    rules = section((await client.get(f"/ips/{SHARED_IP}")).text, "reactions")
    ip = activations["ip"]
    assert ip.rule in rules and ip.why in rules and f"IP {SHARED_IP} → google" in rules
    assert _when(ip.started_at) in rules and _when(ip.ends_at) in rules
    ramp = ", ".join(f"×{f:g} until {_when(u)}" for f, u in ip.steps)
    assert ramp.replace(", ", " ") in rules  # the ramp back after the pause
    assert "yahoo-ts04" not in rules
    # 40 minutes after a 30-minute pause: in its ramp back, capped, still in force
    [ramping] = fire(ctx, NOW - 2400, [("google", "127.0.0.15", OTHER, UNUSUAL_RATE)] * 2)
    assert ramping.until < NOW < ramping.ends_at
    rules = section((await client.get("/ips/127.0.0.15")).text, "reactions")
    assert "pause, now cap ×0.25 (ramping ×0.25)" in rules and ramping.why in rules
    quiet = section((await client.get("/ips/127.0.0.11")).text, "reactions")
    assert "No reaction rule is limiting this IP's mail." in quiet


async def test_tenant_user_sees_operator_instead_of_operator_names(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    engine = ctx.engine()
    automatic = engine.store.moves(DEMOTED)
    assert automatic and all(m.source == "engine" for m in automatic)
    engine.override(DEMOTED, Tier.RISKY, actor="token:ops-robot#3", why="cleaned the list",
                    now=NOW - 300, source="api")
    engine.clear_override(DEMOTED, actor="cli-admin-zed", why="back to automatic",
                          now=NOW - 200, source="cli")
    engine.override(DEMOTED, Tier.SUSPENDED, actor="user:olivia", why="trap storm again",
                    now=NOW - 100, source="dashboard")
    names = ("ops-robot", "cli-admin-zed", "olivia")

    await login(client, "rita")  # an operator sees who did it
    page = html.unescape((await client.get(f"/tenants/{DEMOTED}")).text)
    assert all(name in page for name in names)

    client.cookies.clear()
    await login(client, "nina")  # DEMOTED's own user
    r = await client.get(f"/tenants/{DEMOTED}")
    assert r.status_code == 200
    page = html.unescape(r.text)
    for name in names:
        assert name not in page, name
    assert "pinned by operator: trap storm again" in page
    last = section(r.text, "explanation")
    assert "by operator (dashboard, rule override )" in last and "trap storm again" in last
    moves = section(r.text, "moves")
    assert moves.count("operator (") == 3  # each operator's move, named by role only
    for reason in ("cleaned the list", "back to automatic", "trap storm again"):
        assert reason in moves
    for move in automatic:  # automatic moves keep their actor and their explanation
        assert move.reason in moves
        assert f"{move.actor} (engine)" in moves
