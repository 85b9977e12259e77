"""Fixtures for the dashboard's server-side tests: a seeded store per test and an app over it,
driven in process through httpx's ASGI transport (no mock: the real app, store and engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from poolwarden.http.app import create_app
from poolwarden.services.queries.context import NodeContext
from tests.http.web.support import Seeded, context, seed


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("dashboard-seed") / "template.db"
    seed(path)
    return Seeded(path)


@pytest.fixture
def ctx(seeded: Seeded, tmp_path: Path) -> Iterator[NodeContext]:
    ctx = context(seeded.copy_to(tmp_path))
    yield ctx
    ctx.store.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8025") as c:
        yield c

