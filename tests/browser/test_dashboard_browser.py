"""The dashboard in a real Chromium: log in, overview, a demoted tenant's explanation and a
drawn chart, an override that shows in the audit list; S3: the override, suspend,
release-hold and clear-pin forms (and logout) auto-submitted from pages on other loopback
origins, and their GET variants, all fail and change nothing while the session survives; a
tenant user cannot open another tenant. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Response

from poolwarden.ports import DecisionRow
from poolwarden.services.queries.held import node_held_rows
from tests.browser.conftest import CHROMIUM, NO_CHROMIUM, Attacker, Dashboard, shot
from tests.http.web.support import DEMOTED, NOW, PASSWORD

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)

# colours dashboard.js gives the overall line and the threshold line (RGB)
ALL_LINE = (0x1D, 0x23, 0x30)
THRESHOLD_LINE = (0xB3, 0x26, 0x1E)


def log_in(page: Page, base: str, user: str, path: str = "/") -> None:
    page.goto(base + path)
    assert "/login" in page.url
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()


def pixels(page: Page, canvas: str) -> dict[str, int]:
    """How many pixels of the canvas are painted, and how many in each line colour."""
    return page.evaluate(
        """([selector, all, threshold]) => {
            const c = document.querySelector(selector);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const near = (i, rgb) => Math.abs(d[i] - rgb[0]) < 40
                && Math.abs(d[i + 1] - rgb[1]) < 40 && Math.abs(d[i + 2] - rgb[2]) < 40
                && d[i + 3] > 200;
            let painted = 0, line = 0, limit = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] > 0) painted++;
                if (near(i, all)) line++;
                if (near(i, threshold)) limit++;
            }
            return {painted, line, limit, total: d.length / 4};
        }""", [canvas, list(ALL_LINE), list(THRESHOLD_LINE)])


def test_operator_sees_the_demotion_overrides_it_and_finds_it_in_the_audit(
        page: Page, dashboard: Dashboard) -> None:
    log_in(page, dashboard.url, "olivia")
    assert page.url == dashboard.url + "/"
    assert page.inner_text("h1") == "Overview"
    assert "olivia (operator-write)" in page.inner_text("#whoami")
    attention = page.inner_text("#attention")
    assert DEMOTED in attention
    shot(page, "01-overview")

    page.click(f"#attention a[href='/tenants/{DEMOTED}']")
    page.wait_for_load_state()
    assert page.url.endswith(f"/tenants/{DEMOTED}")
    moves = dashboard.ctx.store.moves(DEMOTED)
    explanation = page.inner_text("#explanation")
    assert moves[0].reason in explanation  # the current tier, explained with its numbers
    assert "trap_hits" in explanation

    # the charts are drawn by Chart.js from the embedded data
    page.wait_for_selector("canvas#chart-trap_hits[data-rendered='1']")
    chart = page.evaluate("""() => {
        const c = window.poolwardenCharts.trap_hits;
        const all = c.data.datasets.find(d => d.label === 'all');
        return {type: c.config.type, labels: c.data.labels.length,
                sum: all.data.reduce((a, b) => a + (b || 0), 0),
                datasets: c.data.datasets.map(d => d.label)};
    }""")
    trap_hits = sum(m.metrics["window"]["trap_hits"] for m in moves[:1])
    assert chart["type"] == "line" and chart["labels"] == 30
    assert chart["sum"] >= trap_hits > 0
    assert "google" in chart["datasets"]
    drawn = pixels(page, "canvas#chart-hard_bounce_rate")
    assert drawn["line"] > 50, drawn  # the overall rate line is on the canvas
    assert drawn["limit"] > 20, drawn  # and the hard_bounce_risky threshold line
    page.locator("#charts").scroll_into_view_if_needed()
    shot(page, "02-tenant-demoted")

    page.select_option("#tier", "risky")
    page.fill("#why", "list cleaned, ticket 4711")
    page.click("#override-form button[type=submit]")
    page.wait_for_load_state()
    assert "Override recorded." in page.inner_text("main")
    assert "pinned by user:olivia" in page.inner_text("#tenant-name")
    shot(page, "03-override-recorded")

    page.click("header nav a[href='/audit']")
    page.wait_for_load_state()
    audit = page.inner_text("#audit")
    assert "user:olivia" in audit and "dashboard" in audit
    assert "list cleaned, ticket 4711" in audit and f"tenant:{DEMOTED}" in audit
    shot(page, "04-audit")
    rows = dashboard.ctx.store.audit()
    assert [(r.actor, r.source, r.action) for r in rows] == [
        ("user:olivia", "dashboard", "override.set")]

    # an IP of the shared pool the demoted tenant used: signals and who caused them
    page.click("header nav a[href='/']")
    page.wait_for_load_state()
    page.click("#pool-shared-new a[href='/ips/127.0.0.13']")
    page.wait_for_selector("canvas#chart-hard_bounce_rate[data-rendered='1']")
    assert DEMOTED in page.inner_text("#neighbours")
    assert pixels(page, "canvas#chart-hard_bounce_rate")["line"] > 50
    shot(page, "05-ip-shared")
    warming = next(ip.address for ip in dashboard.ctx.config.inventory.ips
                   if ip.state.value == "warming")
    page.goto(f"{dashboard.url}/ips/{warming}")
    assert "Schedule" in page.inner_text("#warmup")
    shot(page, "06-ip-warming")


FORMS = {  # every state-changing form of the tenant page, with plausible fields
    "override": {"tier": "good", "why": "forged"},
    "suspend": {"why": "forged"},
    "release-held": {},
    "clear-override": {"why": "forged"},
}


def forged_pages(target: str) -> dict[str, str]:
    """Pages that submit the dashboard's forms (and GET variants) on load."""
    def form(action: str, fields: dict[str, str]) -> str:
        inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">'
                         for k, v in fields.items())
        return (f'<html><body><form id="f" method="post" action="{target}{action}">{inputs}'
                '</form><script>document.getElementById("f").submit()</script></body></html>')

    def get(action: str, fields: dict[str, str]) -> str:
        url = f"{target}{action}?" + "&".join(f"{k}={v}" for k, v in
                                              {**fields, "csrf_token": "guess"}.items())
        return (f'<html><body><img src="{url}"><script>fetch("{url}", {{mode: "no-cors", '
                f'credentials: "include"}}); setTimeout(() => location.href = "{url}", 300)'
                '</script></body></html>')

    pages = {"/logout": form("/logout", {})}
    for name, fields in FORMS.items():
        action = f"/tenants/{DEMOTED}/{name}"
        pages[f"/{name}"] = form(action, {**fields, "csrf_token": "guess"})
        pages[f"/{name}-no-token"] = form(action, fields)
        pages[f"/get-{name}"] = get(action, fields)
    return pages


def test_forged_forms_from_other_loopback_origins_fail(page: Page,
                                                       dashboard: Dashboard) -> None:
    # HOLD decisions as the routing agent logs them, so the tenant has held mail to count
    # (no Postfix here: the forged release must be refused before Postfix would be asked;
    # the real release is tested against a Postfix lab in tests/http/web/test_release_postfix.py)
    dashboard.ctx.store.add_decisions([
        DecisionRow(at=NOW - 60 * i, node="n1", instance=f"h{i}", tenant=DEMOTED,
                    recipient=f"r{i}@gmail.com", action="HOLD", ip=None, pool=None,
                    rule="tier:suspended", snapshot_version=1) for i in range(3)])
    held_before = node_held_rows(dashboard.ctx, DEMOTED)
    assert held_before[0]["held_decisions"] == 3
    log_in(page, dashboard.url, "olivia")
    assert page.inner_text("h1") == "Overview"
    before = dashboard.ctx.engine().standings()[DEMOTED]
    moves_before = len(dashboard.ctx.store.moves(DEMOTED))
    # another site (127.0.0.2: the SameSite=Strict cookie stays home) and the same host on
    # another port (same site, so the cookie is sent: the token and Origin checks must hold)
    attackers = [Attacker(host, forged_pages(dashboard.url))
                 for host in ("127.0.0.2", "127.0.0.1")]
    tried = 0
    try:
        for attacker in attackers:
            for path in forged_pages(dashboard.url):
                responses: list[Response] = []

                def seen(response: Response, into: list[Response] = responses) -> None:
                    into.append(response)

                page.on("response", seen)
                page.goto(attacker.url + path)
                page.wait_for_url(f"{dashboard.url}/**")
                page.wait_for_load_state()
                page.remove_listener("response", seen)
                ours = [r for r in responses if r.url.startswith(dashboard.url)
                        and "/static/" not in r.url]
                seen_text = [(r.request.method, r.url, r.status) for r in ours]
                posts = [r for r in ours if r.request.method == "POST"]
                if path.startswith("/get-"):  # GET variants: nothing to refuse, nothing done
                    assert not posts and ours, seen_text
                    # 404 (no such page) with the session; without it (cross-site: the
                    # Strict cookie stays home) a redirect to the login page
                    assert all(r.status in (303, 404) or r.url.startswith(
                        f"{dashboard.url}/login?") for r in ours), seen_text
                else:
                    assert posts and all(r.status == 403 for r in posts), (attacker.url,
                                                                           seen_text)
                    assert "Refused" in page.inner_text("main"), path
                tried += 1
                if path in ("/override", "/release-held") and \
                        attacker.url.startswith("http://127.0.0.1"):
                    shot(page, f"07-csrf-refused-{path[1:]}")
    finally:
        for attacker in attackers:
            attacker.close()
    assert tried == 2 * (1 + 3 * len(FORMS))
    assert dashboard.ctx.store.audit() == []
    after = dashboard.ctx.engine().standings()[DEMOTED]
    assert (after.tier, after.pinned) == (before.tier, before.pinned)
    assert len(dashboard.ctx.store.moves(DEMOTED)) == moves_before
    assert node_held_rows(dashboard.ctx, DEMOTED) == held_before
    page.goto(dashboard.url + "/")  # the forged logout did not end the session
    assert page.inner_text("h1") == "Overview"

    # the same forms work from the dashboard's own page: the refusals above were the
    # forgery's, not a broken route
    page.goto(f"{dashboard.url}/tenants/{DEMOTED}")
    page.fill("#suspend-why", "forged attempts seen, suspending for review")
    page.click("#suspend-form button[type=submit]")
    page.wait_for_load_state()
    assert "Tenant suspended" in page.inner_text("main")
    assert page.locator("#suspend-form").count() == 0
    shot(page, "08-suspended-from-the-dashboard")
    rows = dashboard.ctx.store.audit()
    assert [(r.actor, r.source, r.action, r.after["tier"]) for r in rows] == [
        ("user:olivia", "dashboard", "override.set", "suspended")]


def test_tenant_user_sees_only_its_tenant(page: Page, dashboard: Dashboard) -> None:
    log_in(page, dashboard.url, "tess")
    assert page.url.endswith("/tenants/corner-bakery")
    assert "corner-bakery" in page.inner_text("h1")
    assert page.locator("#override-form").count() == 0
    page.wait_for_selector("canvas#chart-volume[data-rendered='1']")
    shot(page, "09-tenant-user-own-page")
    for path in (f"/tenants/{DEMOTED}", "/ips/127.0.0.13", "/audit"):
        response = page.goto(dashboard.url + path)
        assert response is not None and response.status == 404, path
        assert DEMOTED not in page.content()
    shot(page, "10-tenant-user-other-tenant-404")
