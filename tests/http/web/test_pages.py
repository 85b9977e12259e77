"""Each dashboard page renders the engine's numbers for an operator (server side, in process)."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import httpx
import pytest

from poolwarden.core.reputation import ALL_PROVIDERS, Scope
from poolwarden.ports import AlertRow, DecisionRow
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.reputation.engine import day_of
from tests.http.web.support import DEMOTED, EVIL, NOW, login

pytestmark = pytest.mark.anyio

SERIES = re.compile(r'<script type="application/json" id="series-data">(.*?)</script>', re.S)


def series_of(page: str) -> dict:
    found = SERIES.search(page)
    assert found, "no chart data in the page"
    return json.loads(found.group(1))


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    for path in ("/", f"/tenants/{DEMOTED}", "/ips/127.0.0.13", "/audit"):
        r = await client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")


async def test_wrong_password_is_refused(client: httpx.AsyncClient) -> None:
    r = await login(client, "olivia", "not the password")
    assert r.status_code == 401
    assert "Wrong user name or password" in r.text
    assert (await client.get("/")).status_code == 303


async def test_overview_shows_pools_tiers_and_attention(client: httpx.AsyncClient,
                                                        ctx: NodeContext) -> None:
    assert (await login(client, "rita")).status_code == 303
    r = await client.get("/")
    assert r.status_code == 200
    page = r.text
    engine = ctx.engine()
    for pool in engine.config.inventory.pools:
        assert f'id="pool-{pool.name}"' in page
        for address in pool.ips:
            assert f'href="/ips/{address}"' in page
    tiers = [s.tier.value for s in engine.standings().values()]
    for tier in set(tiers):
        assert re.search(rf'tier-{tier}">{tier}</span><strong>{tiers.count(tier)}</strong>', page)
    attention = page[page.index('id="attention"'):page.index('id="restrictions"')]
    assert f'href="/tenants/{DEMOTED}"' in attention
    tier = engine.standings()[DEMOTED].tier.value
    assert f"tier {tier}" in attention
    assert "trap hit" in attention  # the move's explanation, with its numbers
    assert "corner-bakery" not in attention  # a good tenant needs no attention
    assert r.headers["content-security-policy"].startswith("default-src 'self'")


async def test_tenant_page_explains_the_demotion_and_embeds_chart_data(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    await login(client, "rita")
    r = await client.get(f"/tenants/{DEMOTED}")
    assert r.status_code == 200
    page = html.unescape(r.text)
    engine = ctx.engine()
    moves = engine.store.moves(DEMOTED)
    assert moves, "the seed demoted the tenant"
    for move in moves:  # every move, with the numbers and the threshold it crossed
        assert move.reason in page
        for finding in move.metrics.get("findings", []):
            assert finding["threshold_name"] in page
    assert f"<strong>{moves[0].reason}</strong>" in page  # the current tier's explanation
    assert "hard_bounce_risky" in page and "trap_hits_suspend" in page
    assert 'id="override-form"' not in page  # a read-only operator gets no form

    data = series_of(r.text)
    assert len(data["days"]) == 30
    assert {"all", "google", "microsoft"} <= set(data["providers"])
    end = day_of(NOW)
    daily = engine.ledger.daily(Scope.TENANT, DEMOTED, end_day=end, days=30,
                                provider=ALL_PROVIDERS)
    assert data["providers"]["all"]["trap_hits"] == [c.trap_hits for _, c in daily]
    assert data["providers"]["all"]["volume"] == [c.volume for _, c in daily]
    last = daily[-1][1]
    if last.volume:
        assert data["providers"]["all"]["hard_bounce_rate"][-1] == pytest.approx(
            last.hard_bounces / last.volume, abs=1e-6)
    assert data["providers"]["all"]["hard_bounce_rate"][0] is None  # no mail: a gap, not 0
    for signal in ("hard_bounce_rate", "complaint_rate", "deferral_rate", "trap_hits",
                   "volume"):
        assert f'data-signal="{signal}"' in r.text
    assert '<script src="/static/vendor/chart.umd.min.js"></script>' in r.text


async def test_ip_page_ranks_bad_neighbours(client: httpx.AsyncClient, ctx: NodeContext) -> None:
    await login(client, "rita")
    engine = ctx.engine()
    shared = [a for p in engine.config.inventory.pools for a in p.ips]
    address = max(shared, key=lambda a: (len(engine.neighbours(a, NOW)),
                                         sum(n.trap_hits for n in engine.neighbours(a, NOW))))
    ranking = engine.neighbours(address, NOW)
    assert len(ranking) >= 2 and ranking[0].tenant in (DEMOTED, EVIL)  # both mail old lists
    r = await client.get(f"/ips/{address}")
    assert r.status_code == 200
    table = r.text[r.text.index('id="neighbours"'):]
    rows = re.findall(r'<tr><td><a href="/tenants/([^"]+)">', table)
    assert rows[:len(ranking)] == [quote(n.tenant, safe="") for n in ranking]
    first = ranking[0]
    assert f"{first.bounce_share * 100:.1f} %" in table
    assert f"{first.trap_share * 100:.1f} %" in table
    data = series_of(r.text)
    assert sum(data["providers"]["all"]["trap_hits"]) >= first.trap_hits
    assert (await client.get("/ips/192.0.2.99")).status_code == 404


async def test_override_is_applied_and_audited(client: httpx.AsyncClient,
                                               ctx: NodeContext) -> None:
    await login(client, "olivia")
    page = await client.get(f"/tenants/{DEMOTED}")
    assert 'id="override-form"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    before = ctx.engine().standings()[DEMOTED].tier
    r = await client.post(f"/tenants/{DEMOTED}/override",
                          data={"tier": "risky", "why": "list cleaned, ticket 42",
                                "csrf_token": token})
    assert r.status_code == 303
    standing = ctx.engine().standings()[DEMOTED]
    assert standing.tier.value == "risky" and standing.pinned
    assert standing.pinned_by == "user:olivia"
    rows = ctx.store.audit()
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor, row.source, row.action, row.target) == (
        "user:olivia", "dashboard", "override.set", f"tenant:{DEMOTED}")
    assert row.before["tier"] == before.value and row.after["tier"] == "risky"
    assert (row.before["pinned"], row.after["pinned"]) == (False, True)
    assert row.after["reason"] == row.after["pinned_why"] == "list cleaned, ticket 42"
    audit = await client.get("/audit")
    assert "user:olivia" in audit.text and "list cleaned, ticket 42" in audit.text
    shown = await client.get(r.headers["location"])
    assert "Override recorded." in shown.text and 'id="clear-form"' in shown.text

    token = re.search(r'name="csrf_token" value="([^"]+)"', shown.text).group(1)
    r = await client.post(f"/tenants/{DEMOTED}/clear-override",
                          data={"why": "back to automatic", "csrf_token": token})
    assert r.status_code == 303
    assert not ctx.engine().standings()[DEMOTED].pinned
    assert [a.action for a in ctx.store.audit()] == ["override.clear", "override.set"]
    r = await client.post(f"/tenants/{DEMOTED}/clear-override",
                          data={"why": "again", "csrf_token": token})
    assert r.status_code == 409  # no pin left to clear: nothing recorded
    assert len(ctx.store.audit()) == 2


async def test_bad_override_input_names_the_field(client: httpx.AsyncClient,
                                                  ctx: NodeContext) -> None:
    await login(client, "olivia")
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      (await client.get(f"/tenants/{DEMOTED}")).text).group(1)
    r = await client.post(f"/tenants/{DEMOTED}/override",
                          data={"tier": "platinum", "why": "x", "csrf_token": token})
    assert r.status_code == 400 and "tier: unknown tier" in r.text
    r = await client.post(f"/tenants/{DEMOTED}/override",
                          data={"tier": "good", "why": "  ", "csrf_token": token})
    assert r.status_code == 400 and "why" in r.text
    assert ctx.store.audit() == []
    assert not ctx.engine().standings()[DEMOTED].pinned


async def test_static_files_are_the_vendored_build_and_nothing_else(
        client: httpx.AsyncClient) -> None:
    r = await client.get("/static/vendor/chart.umd.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "Chart.js v4.6.1" in r.text[:200]
    licence = await client.get("/static/vendor/chart.js-LICENSE.md")
    assert "MIT" in licence.text or "Permission is hereby granted" in licence.text
    for path in ("/static/../routes.py", "/static/%2e%2e/routes.py", "/static/routes.py",
                 "/static/templates/base.html"):
        assert (await client.get(path)).status_code == 404, path


async def test_warming_ip_shows_its_warm_up_progress(client: httpx.AsyncClient,
                                                     ctx: NodeContext) -> None:
    await login(client, "rita")
    engine = ctx.engine()
    warming = [ip.address for ip in engine.config.inventory.ips if ip.state.value == "warming"]
    assert warming, "the example declares a warming IP"
    detail = engine.warmup().ip_detail(warming[0], NOW)
    assert detail is not None
    page = html.unescape((await client.get(f"/ips/{warming[0]}")).text)
    section = page[page.index('id="warmup"'):page.index('id="neighbours"')]
    assert f"Schedule {detail['schedule']}" in re.sub(r"<[^>]+>", "", section)
    for provider, cap in detail["caps"].items():
        assert re.search(rf"<td>{provider}</td><td class=\"num\">{detail['stages'][provider]} / "
                         rf"{detail['stages_total']}</td>\s*<td class=\"num\">{cap}</td>",
                         section), provider
    active = next(ip.address for ip in engine.config.inventory.ips
                  if ip.state.value == "active")
    assert 'id="warmup"' not in (await client.get(f"/ips/{active}")).text


async def test_overview_counts_held_mail(client: httpx.AsyncClient, ctx: NodeContext) -> None:
    ctx.store.add_decisions([
        DecisionRow(at=NOW - 60 * i, node="n1", instance=f"i{i}", tenant=DEMOTED,
                    recipient=f"r{i}@gmail.com", action="HOLD", ip=None, pool=None,
                    rule="tier:suspended", snapshot_version=1) for i in range(3)])
    await login(client, "rita")
    page = (await client.get("/")).text
    held = page[page.index('id="held"'):page.index("<h2>Shared pools</h2>")]
    assert re.search(rf'href="/tenants/{DEMOTED}">{DEMOTED}</a></td><td class="num">3</td>',
                     held)


async def test_overview_lists_recent_alerts_with_links_to_their_pages(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    ctx.store.add_alert(AlertRow(
        at=NOW - 3600, key=f"tier:{DEMOTED}", kind="suspension",
        subject=f"{DEMOTED} suspended", text="3 spam-trap hit(s) ≥ trap_hits_suspend 3",
        link=f"http://dash.example:8025/tenants/{DEMOTED}", numbers={"trap_hits": 3},
        tenant=DEMOTED))
    ctx.store.add_alert(AlertRow(
        at=NOW - 60, key="evil", kind="ingest_lag", subject="<b>lag</b>", text="x",
        link="javascript:alert(1)", numbers={}))
    ctx.store.add_alert(AlertRow(
        at=NOW - 30 * 86400, key="old", kind="ingest_lag", subject="long ago", text="x",
        link="/", numbers={}))
    await login(client, "rita")
    page = (await client.get("/")).text
    alerts = page[page.index('id="alerts"'):page.index('id="restrictions"')]
    assert f'<a href="/tenants/{DEMOTED}">{DEMOTED} suspended</a>' in alerts
    assert "3 spam-trap hit(s) ≥ trap_hits_suspend 3" in alerts
    assert 'href="#">&lt;b&gt;lag&lt;/b&gt;</a>' in alerts and "javascript:" not in alerts
    assert "long ago" not in alerts  # a week old at most


async def test_listings_show_on_overview_ip_and_tenant_pages(client: httpx.AsyncClient,
                                                             ctx: NodeContext) -> None:
    from poolwarden.core.blocklists import Finding, Status
    from poolwarden.services.monitors.monitord import Monitord

    config = ctx.config
    monitord = Monitord(lambda: config, ctx.store, clock=lambda: NOW - 60, in_process=True)
    states, changes = monitord.fold([Finding("127.0.0.13", "spamhaus-zen", Status.LISTED,
                                             ("127.0.0.2",), "127.0.0.2: SBL: spam source",
                                             "see the SBL record")], config, now=NOW - 60)
    ctx.store.save_listings(states, changes)
    snapshot = ctx.engine().snapshot(NOW)
    rider = next(name for name, e in snapshot.tenants.items() if e.route.pool == "shared-new")
    await login(client, "rita")
    for path in ("/", "/ips/127.0.0.13", f"/tenants/{quote(rider, safe='')}"):
        r = await client.get(path)
        assert r.status_code == 200, path
        section = r.text.split('id="blocklists"', 1)[1].split("</section>", 1)[0]
        assert "spamhaus-zen" in section and "SBL: spam source" in section, path
    r = await client.get("/ips/127.0.0.11")
    assert "No DNS blocklist lists it." in r.text


async def test_tenant_page_shows_its_domains_findings_and_dmarc(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    from poolwarden.core.auth import Finding
    from poolwarden.services.domains.dmarc_ingest import DmarcIngest
    from tests.services.domains.dmarc_samples import report_xml

    config = ctx.config
    tenant = next(t for t in config.inventory.tenants if t.name == DEMOTED)
    domain = tenant.domains[0]
    record = "v=spf1 ip4:127.0.0.11 -all"
    ctx.store.save_auth_findings([
        Finding(DEMOTED, domain, "spf", "ok", "SPF record parses, 0 of 10 DNS lookups",
                record),
        Finding(DEMOTED, domain, "spf-route", "error", "127.0.0.13 (shared-new) is not "
                "authorized: SPF fail", record, "shared-new", "127.0.0.13")],
        at=NOW, tenants=[DEMOTED])
    DmarcIngest(ctx.store, config.inventory, clock=lambda: NOW).ingest(report_xml(
        domain=domain, begin=int(NOW) - 86400, records=[
            ("127.0.0.13", 40, "pass", "fail"), ("192.0.2.77", 9, "fail", "fail")]),
        source="r.xml")
    await login(client, "rita")
    r = await client.get(f"/tenants/{DEMOTED}")
    assert r.status_code == 200
    page = html.unescape(r.text)
    section = page[page.index('id="domains"'):page.index('id="reactions"')]
    assert f'data-domain="{domain}"' in section and "from, mailfrom" in section
    assert "spf: ok" in section and "spf-route: error" in section
    assert "127.0.0.13 (shared-new) is not authorized: SPF fail" in section
    assert f"<code>{record}</code>" in section
    assert "40 messages, 100% passed DMARC" in section
    assert "shared-new: SPF aligned 0%, DKIM aligned 100%" in section
    assert "9 messages from 1 source(s)" in section
    assert "came from 1 source(s) that are not our egress IPs" in section
