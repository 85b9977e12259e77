"""Store fixtures: one store per backend (SQLite file, a fresh PostgreSQL database, memory).

PostgreSQL is part of the product, so an unreachable server fails the test
(with what to fix) instead of skipping it. Set ``POOLWARDEN_TEST_PG_URL`` to
an admin URL of another server; each test gets its own database, dropped after.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.ports import Store

PG_ADMIN_URL = os.environ.get("POOLWARDEN_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")



@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("memory", id="memory"),
])
def backend(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on; SQL-only tests parametrize ``backend`` themselves."""
    name: str = request.param
    return name


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """Create a new, empty PostgreSQL database; yield its URL; drop it after."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5})
    name = f"pw_test_{secrets.token_hex(6)}"
    problem = ""
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        problem = str(getattr(exc, "orig", None) or exc).strip()
    if problem:
        admin.dispose()
        pytest.fail(f"PostgreSQL is needed for this test and is not usable at "
                    f"{make_url(PG_ADMIN_URL).render_as_string(hide_password=True)}:\n"
                    f"{problem}\n"
                    f"Start PostgreSQL or set POOLWARDEN_TEST_PG_URL to an admin URL.",
                    pytrace=False)
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str | None]:
    """The URL of an empty database for the test's SQL backend; None for memory."""
    if backend == "memory":
        yield None
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'poolwarden.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


@pytest.fixture
def make_store(db_url: str | None) -> Iterator[Callable[[], Store]]:
    """Open (another) store on the test's backend; every one is closed after the test,
    before its database is dropped."""
    opened: list[Store] = []

    def make() -> Store:
        store: Store = MemoryStore() if db_url is None else open_store(db_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


@pytest.fixture
def sql_store(store: Store) -> SqlStore:
    assert isinstance(store, SqlStore)
    return store
