"""Dashboard security, server side: tenant isolation from the route table, roles, CSRF,
escaping, cookie flags, session end and login throttling (docs/testing.md S1, S2, S3, B7)."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute

from poolwarden.http.app import create_app
from poolwarden.http.web import router
from poolwarden.services.queries.context import NodeContext
from tests.http.web.support import DEMOTED, EVIL, PASSWORD, csrf_of, login

pytestmark = pytest.mark.anyio

OWN = "corner-bakery"  # tess's tenant
OTHER = DEMOTED  # somebody else's

# Every dashboard route and what a tenant user may do with it. A route missing here fails
# test_every_route_has_an_isolation_rule, so a new page cannot ship without a decision.
ISOLATION = {
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "own session",
    ("GET", "/static/{path:path}"): "public",
    ("GET", "/"): "operators; a tenant user is sent to its own tenant",
    ("GET", "/tenants/{name:path}"): "own tenant only",
    ("GET", "/ips/{address}"): "operators only",
    ("GET", "/audit"): "operators only",
    ("POST", "/tenants/{name:path}/override"): "operator-write only",
    ("POST", "/tenants/{name:path}/clear-override"): "operator-write only",
    ("POST", "/tenants/{name:path}/suspend"): "operator-write only",
    ("POST", "/tenants/{name:path}/release-held"): "operator-write only",
}
FORMS = ("override", "clear-override", "suspend", "release-held")  # every state-changing form


def routes() -> set[tuple[str, str]]:
    found = set()
    for route in router.routes:
        assert isinstance(route, APIRoute)
        for method in route.methods:
            found.add((method, route.path))
    return found


def test_every_route_has_an_isolation_rule() -> None:
    assert routes() == set(ISOLATION)


def _filled(path: str, tenant: str, address: str) -> str:
    return (path.replace("{name:path}", quote(tenant, safe="")).replace("{address}", address)
            .replace("{path:path}", "dashboard.css"))


async def test_a_tenant_user_reaches_nothing_of_another_tenant(client: httpx.AsyncClient,
                                                               ctx: NodeContext) -> None:
    await login(client, "tess")
    engine = ctx.engine()
    other_ips = [a for t in engine.config.inventory.tenants if t.name != OWN
                 for a in t.dedicated_ips] + [a for p in engine.config.inventory.pools
                                              for a in p.ips]
    token = csrf_of((await client.get(f"/tenants/{OWN}")).text)
    not_found = (await client.get("/tenants/no-such-tenant")).text
    for method, path in sorted(ISOLATION):
        if ISOLATION[(method, path)] == "public" or path == "/logout":
            continue
        for address in other_ips[:3]:
            url = _filled(path, OTHER, address)
            if method == "GET":
                r = await client.get(url)
            else:
                r = await client.post(url, data={"tier": "good", "why": "x",
                                                 "csrf_token": token})
            if path == "/":
                assert r.status_code == 303 and r.headers["location"] == f"/tenants/{OWN}"
                continue
            assert r.status_code == 404, (method, url)
            assert r.text == not_found  # the same answer as for a name that does not exist
            for name in (OTHER, EVIL, "bigretail"):
                assert name not in r.text and quote(name, safe="") not in r.text
    own = await client.get(f"/tenants/{OWN}")
    assert own.status_code == 200 and 'id="override-form"' not in own.text
    assert OTHER not in own.text  # no other tenant's name, e.g. in a neighbour table
    r = await client.post(f"/tenants/{OWN}/override",
                          data={"tier": "good", "why": "x", "csrf_token": token})
    assert r.status_code == 403  # its own tenant, but a tenant role writes nothing
    assert ctx.store.audit() == [] and not ctx.engine().standings()[OWN].pinned


async def test_read_only_operator_sees_everything_and_changes_nothing(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    await login(client, "rita")
    for path in ("/", f"/tenants/{OTHER}", "/ips/127.0.0.13", "/audit"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.text.count("<form") == 1  # only the logout button
    page = (await client.get(f"/tenants/{OTHER}")).text
    for form in ("override-form", "clear-form", "suspend-form", "release-form"):
        assert f'id="{form}"' not in page
    for action in FORMS:
        r = await client.post(f"/tenants/{OTHER}/{action}",
                              data={"tier": "good", "why": "x", "csrf_token": csrf_of(page)})
        assert r.status_code == 403, action
        assert "Your role may not change anything" in r.text
    assert ctx.store.audit() == [] and not ctx.engine().standings()[OTHER].pinned


async def test_forms_without_the_token_or_from_elsewhere_are_refused(
        client: httpx.AsyncClient, ctx: NodeContext) -> None:
    await login(client, "olivia")
    token = csrf_of((await client.get(f"/tenants/{OTHER}")).text)
    url = f"/tenants/{OTHER}/override"
    form = {"tier": "good", "why": "forged"}
    cases = [
        ({}, {}),  # no token
        ({"csrf_token": "x" * 43}, {}),  # wrong token
        ({"csrf_token": token[:-1]}, {}),  # almost right
        ({"csrf_token": token}, {"Origin": "http://127.0.0.2:8025"}),  # right token, other site
        ({"csrf_token": token}, {"Origin": "http://127.0.0.1:9999"}),  # other port, same host
        ({"csrf_token": token}, {"Origin": "null"}),
        ({"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf_token": token}, {"Sec-Fetch-Site": "same-site"}),
    ]
    for extra, headers in cases:
        r = await client.post(url, data={**form, **extra}, headers=headers)
        assert r.status_code == 403, (extra, headers)
    for action in FORMS[1:]:
        for fields, headers in (({}, {}), ({"csrf_token": token[:-1]}, {}),
                                ({"csrf_token": token}, {"Origin": "http://127.0.0.2"}),
                                ({"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"})):
            r = await client.post(f"/tenants/{OTHER}/{action}",
                                  data={"why": "forged", **fields}, headers=headers)
            assert r.status_code == 403, (action, fields, headers)
    # GET never changes state (it asks for a tenant named "…/override": there is none)
    for action in FORMS:
        r = await client.get(f"/tenants/{OTHER}/{action}?tier=good&why=x&csrf_token={token}")
        assert r.status_code == 404, action
    assert ctx.store.audit() == []
    assert not ctx.engine().standings()[OTHER].pinned
    # the same form from this origin goes through
    r = await client.post(url, data={**form, "csrf_token": token},
                          headers={"Origin": "http://127.0.0.1:8025",
                                   "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303
    assert len(ctx.store.audit()) == 1


async def test_login_and_logout_need_the_token_too(client: httpx.AsyncClient) -> None:
    form = await client.get("/login")
    r = await client.post("/login", data={"username": "olivia", "password": PASSWORD})
    assert r.status_code == 403
    r = await client.post("/login", data={"username": "olivia", "password": PASSWORD,
                                          "csrf_token": csrf_of(form.text)},
                          headers={"Origin": "http://127.0.0.2"})
    assert r.status_code == 403
    assert (await client.get("/")).status_code == 303  # still logged out
    await login(client, "olivia")
    assert (await client.get("/")).status_code == 200
    assert (await client.post("/logout", data={})).status_code == 403
    assert (await client.get("/")).status_code == 200  # still logged in


async def test_tenant_names_and_reasons_are_escaped(client: httpx.AsyncClient,
                                                    ctx: NodeContext) -> None:
    await login(client, "olivia")
    for path in ("/", f"/tenants/{quote(EVIL, safe='')}", "/ips/127.0.0.13"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert EVIL not in r.text, path
        assert "&lt;script&gt;alert(&#34;pw&#34;)&lt;/script&gt;" in r.text, path
    page = (await client.get(f"/tenants/{quote(EVIL, safe='')}")).text
    why = '"><img src=x onerror=alert(1)>\r\nFAKE LOG LINE'
    r = await client.post(f"/tenants/{quote(EVIL, safe='')}/override",
                          data={"tier": "good", "why": why, "csrf_token": csrf_of(page)})
    assert r.status_code == 303
    for path in (r.headers["location"], "/audit"):
        shown = (await client.get(path)).text
        assert "<img src=x" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown
    # chart data inside <script> cannot close its element
    series = re.search(r'id="series-data">(.*?)</script>', page, re.S).group(1)
    assert "</script" not in series and "<" not in series


async def test_session_cookie_flags(ctx: NodeContext) -> None:
    app = create_app(ctx)
    for base, secure in (("http://127.0.0.1:8025", False), ("http://[::1]:8025", False),
                         ("http://localhost:8025", False), ("https://dash.example", True)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=base) as c:
            form = await c.get("/login")
            # the login form has its own cookie: a cross-site link to /login (which arrives
            # without the Strict session cookie) must not overwrite a logged-in session
            assert form.headers.get_list("set-cookie")[0].startswith("pw_login=")
            assert len(form.headers.get_list("set-cookie")) == 1
            r = await c.post("/login", data={"username": "olivia", "password": PASSWORD,
                                             "csrf_token": csrf_of(form.text)})
            assert r.status_code == 303
            cookies = {v.split("=", 1)[0]: v for v in r.headers.get_list("set-cookie")}
            assert set(cookies) == {"pw_session", "pw_login"}  # the form's is deleted
            for cookie in (form.headers["set-cookie"], cookies["pw_session"]):
                assert "HttpOnly" in cookie and "SameSite=strict" in cookie, base
                assert ("Secure" in cookie) is secure, base


async def test_logout_ends_the_session_on_the_server(client: httpx.AsyncClient) -> None:
    await login(client, "olivia")
    stolen = client.cookies.get("pw_session")
    page = await client.get("/")
    assert page.status_code == 200
    r = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    client.cookies.set("pw_session", stolen)  # a copy of the cookie taken before logout
    assert (await client.get("/")).status_code == 303


async def test_removed_user_is_out_at_once(client: httpx.AsyncClient, ctx: NodeContext) -> None:
    await login(client, "olivia")
    assert (await client.get("/")).status_code == 200
    assert ctx.store.remove_user("olivia")
    assert (await client.get("/")).status_code == 303


async def test_forged_cookie_is_ignored(client: httpx.AsyncClient) -> None:
    await login(client, "olivia")
    value = client.cookies.get("pw_session")
    sid, rest = value.split(".", 1)
    client.cookies.set("pw_session", sid[:-2] + "AA." + rest)
    assert (await client.get("/")).status_code == 303


async def test_failed_logins_are_throttled_per_client_without_locking_the_account(
        ctx: NodeContext) -> None:
    app = create_app(ctx)

    def client_from(host: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4000)),
                                 base_url="http://127.0.0.1:8025")

    async with client_from("127.0.0.66") as attacker:
        codes = [(await login(attacker, "olivia", "guess")).status_code for _ in range(11)]
        assert codes[:10] == [401] * 10 and codes[10] == 429
        assert (await login(attacker, "olivia")).status_code == 429  # even the right one
    async with client_from("127.0.0.7") as operator:
        assert (await login(operator, "olivia")).status_code == 303


async def test_login_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example",
                   "javascript:alert(1)"):
        client.cookies.clear()
        form = await client.get("/login", params={"next": target})
        r = await client.post("/login", data={"username": "olivia", "password": PASSWORD,
                                              "csrf_token": csrf_of(form.text),
                                              "next": target})
        assert r.status_code == 303 and r.headers["location"] == "/", target
