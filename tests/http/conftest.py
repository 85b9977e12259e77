"""The API under test: the example configuration, a real SQLite store with two tenants'
traffic (A and B share the IP 127.0.0.13), one token per role, and an in-process client
(httpx over the ASGI transport: no socket, the real app)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import LoadedConfig, load_config
from poolwarden.core.events import EventKind
from poolwarden.http.app import create_app
from poolwarden.ports import DecisionRow
from poolwarden.services.access import auth
from poolwarden.services.alerts.watcher import Alerter
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.reputation.engine import Engine
from poolwarden.testing.builders import many
from tests.support.postfix_lab import PostfixLab

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
A, B = "corner-bakery", "pixelforge"  # both on the shared-new pool
SHARED_IP = "127.0.0.13"
B_DEDICATED_LIKE = "127.0.0.21"  # bigretail's: an IP no tenant token may read


@dataclass
class Api:
    """A client of the app with a token per role; ``call`` returns the httpx response."""

    app: Any
    ctx: NodeContext
    store: SqlStore
    config_file: Path
    tokens: dict[str, str] = field(default_factory=dict)
    now: float = 0.0

    def call(self, method: str, path: str, *, token: str | None = "operator-write",
             headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {self.tokens.get(token, token)}")

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, path, headers=sent, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, **kwargs)

    def burst(self, requests: list[tuple[str, str, dict[str, str]]]) -> list[httpx.Response]:
        """(method, path, headers) requests sent one after another over one client."""

        async def go() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return [await c.request(m, p, headers=h) for m, p, h in requests]

        return asyncio.run(go())


def seed(config: LoadedConfig, store: SqlStore, now: float) -> None:
    """A sends cleanly; B bounces hard on the shared IP and is demoted by the engine;
    both have routing decisions (B's include HOLDs); the alerter records B's demotion and
B as a bad neighbour on the shared IP."""
    engine = Engine(config, store, now=now)
    at = now - 3600
    engine.add_events([
        *many(EventKind.DELIVERED, 400, tenant=A, ip=SHARED_IP, time=at, provider="google"),
        *many(EventKind.HARD_BOUNCE, 2, tenant=A, ip=SHARED_IP, time=at, provider="google"),
        *many(EventKind.DELIVERED, 300, tenant=B, ip=SHARED_IP, time=at, provider="yahoo"),
        *many(EventKind.HARD_BOUNCE, 120, tenant=B, ip=SHARED_IP, time=at, provider="yahoo"),
        *many(EventKind.COMPLAINT, 9, tenant=B, ip=SHARED_IP, time=at, provider="yahoo"),
    ])
    Engine(config, store, now=now).evaluate(now)
    rows = []
    for i in range(6):
        rows.append(DecisionRow(at=at + i, node="n1", instance=f"a{i}", tenant=A,
                                recipient=f"ann{i}@gmail.com", action="FILTER smtp-13:",
                                ip=SHARED_IP, pool="shared-new", rule="tier:new",
                                snapshot_version=1, queue_id=f"QA{i}"))
        rows.append(DecisionRow(at=at + i, node="n1", instance=f"b{i}", tenant=B,
                                recipient=f"bob{i}@yahoo.com",
                                action="HOLD suspended" if i % 2 else "FILTER smtp-13:",
                                ip=SHARED_IP, pool="shared-new", rule="tier:risky",
                                snapshot_version=1, queue_id=f"QB{i}"))
    store.add_decisions(rows)
    record_alerts(config, store, now)
    seed_domains(config, store, now)  # after the alerts: the alert tests count them


def seed_domains(config: LoadedConfig, store: SqlStore, now: float) -> None:
    """A DMARC report for each of A and B (and one refused), and stored findings for both."""
    from poolwarden.core.auth import Finding
    from poolwarden.services.domains.dmarc_ingest import DmarcIngest
    from tests.services.domains.dmarc_samples import report_xml

    ingest = DmarcIngest(store, config.inventory, clock=lambda: now)
    begin = int(now - 86400)
    for tenant, domain in ((A, "cornerbakery.example"), (B, "pixelforge.example")):
        ingest.ingest(report_xml(report_id=f"r-{tenant}", domain=domain, begin=begin,
                                 records=[(SHARED_IP, 50, "pass", "fail"),
                                          ("203.0.113.5", 3, "fail", "fail")]),
                      source=f"{tenant}.xml")
        # status ok: an error would raise an auth_route alert the alert tests do not expect
        store.save_auth_findings([Finding(tenant, domain, "spf-route", "ok",
                                          f"{SHARED_IP} is authorized",
                                          f"v=spf1 ip4:{SHARED_IP} -all", "shared-new",
                                          SHARED_IP)],
                                 at=now, tenants=[tenant])
    ingest.ingest(b"<feedback>", source="broken.xml")


def record_alerts(config: LoadedConfig, store: SqlStore, now: float) -> list[Any]:
    """What the real alerter (no channel: recorded only) finds in the store now: the
    moves since ``now - 1`` (B's demotion) and bad neighbours (B on the shared IP)."""
    alerter = Alerter(lambda: config, store, channels=[], clock=lambda: now - 1,
                      engine=lambda c, at: Engine(c, store, now=at))
    rows = asyncio.run(alerter.deliver(alerter.detect(now)))
    alerter.record(rows)
    return rows


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    config_file = tmp_path / "poolwarden.toml"
    shutil.copy(EXAMPLE, config_file)
    config = load_config(config_file)  # its SQLite store lives beside the file
    store = open_store(config.store_url)
    now = time.time()
    seed(config, store, now)
    ctx = NodeContext(loaded_config=config, store=store, clock=lambda: now, engine_ttl=0)
    client = Api(app=create_app(ctx), ctx=ctx, store=store, config_file=config_file, now=now)
    for role, tenant in (("operator-read", None), ("operator-write", None),
                         ("tenant-a", A), ("tenant-b", B)):
        made = auth.create_token(store, name=role, role="tenant" if tenant else role,
                                 tenant=tenant, created_by="test", now=now)
        client.tokens[role] = made.secret
    try:
        yield client
    finally:
        store.close()


def lab_api(lab: PostfixLab) -> Iterator[Api]:
    """The app over a Postfix lab's configuration and store, with an operator-write
    token: for the tests that count and release mail in a real hold queue."""
    config = load_config(lab.config)
    store = open_store(config.store_url)
    ctx = NodeContext(loaded_config=config, store=store, engine_ttl=0,
                     postfix_config_dir=str(lab.etc))
    client = Api(app=create_app(ctx), ctx=ctx, store=store, config_file=lab.config,
                 now=time.time())
    client.tokens["operator-write"] = auth.create_token(
        store, name="lab", role="operator-write", created_by="test", now=time.time()).secret
    try:
        yield client
    finally:
        store.close()
