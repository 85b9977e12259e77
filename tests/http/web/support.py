"""A seeded dashboard for tests: the example configuration plus a tenant whose name is HTML,
days of simulated traffic through the real engine (so tenants really get demoted), and one
user per role.

The seed runs once per test session into a SQLite template; each test gets its own copy.
The app's clock is fixed at ``NOW`` so every page shows the same numbers.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import LoadedConfig, load_config_text
from poolwarden.core.model import Tier
from poolwarden.services.access import auth
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.reputation.engine import DAY, Engine
from poolwarden.sim.demo import run_demo

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "poolwarden.toml"
NOW = 20400 * DAY + 13 * 3600.0  # a fixed afternoon; the simulated days end on it
SIM_DAYS = 14
EVIL = '<script>alert("pw")</script>'  # a valid tenant name (no whitespace) that is HTML
DEMOTED = "northwind-news"  # the demo's shared tenant that mails an old list from day 8
PASSWORD = "correct horse battery"
USERS = {  # name: (role, tenant)
    "olivia": ("operator-write", None),
    "rita": ("operator-read", None),
    "tess": ("tenant", "corner-bakery"),
    "nina": ("tenant", DEMOTED),
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def config_text() -> str:
    return EXAMPLE.read_text() + (
        "\n# a tenant whose name is markup: every page must show it as text\n"
        "[[tenants]]\n"
        f"name = '{EVIL}'\n"
        'plan = "shared"\n'
        'domains = ["evil.example"]\n')


def load() -> LoadedConfig:
    return load_config_text(config_text(), file=str(EXAMPLE))


def seed(path: Path) -> None:
    """Simulate ``SIM_DAYS`` days ending at ``NOW`` into a new SQLite store at ``path``."""
    store = open_store(f"sqlite:///{path}")
    try:
        engine = Engine(load(), store, now=NOW)
        run_demo(engine, days=SIM_DAYS, seed=7, now=NOW)
        tier = engine.standings()[DEMOTED].tier
        assert tier in (Tier.RISKY, Tier.SUSPENDED), f"the seed did not demote {DEMOTED}"
        tenants = {t.name for t in engine.config.inventory.tenants}
        for name, (role, tenant) in USERS.items():
            auth.create_user(store, name=name, password=PASSWORD, role=role, tenant=tenant,
                             now=NOW - DAY, known_tenants=tenants)
    finally:
        store.close()


@dataclass
class Seeded:
    path: Path

    def copy_to(self, directory: Path) -> Path:
        target = directory / "store.db"
        shutil.copy(self.path, target)
        return target


def context(db: Path) -> NodeContext:
    store = open_store(f"sqlite:///{db}")
    return NodeContext(loaded_config=load(), store=store, clock=lambda: NOW)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no anti-forgery token in the page"
    return found.group(1)


async def login(client: httpx.AsyncClient, user: str, password: str = PASSWORD
                ) -> httpx.Response:
    """Log in through the real form (anti-forgery token included); the POST's response."""
    form = await client.get("/login")
    return await client.post("/login", data={"username": user, "password": password,
                                             "csrf_token": csrf_of(form.text), "next": "/"})
