"""The warm-up service over a real SQLite store: stages advance from the ledger's delivered
outcomes per provider, are stored, and become the snapshot's caps; new sending domains
warm on their own schedule."""

from __future__ import annotations

from pathlib import Path

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.core.caps import CapCounter
from poolwarden.core.events import EventKind
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.snapshot import Action
from poolwarden.services.reputation.engine import Engine
from poolwarden.testing.builders import many

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "poolwarden.toml"
DAY = 20000
T0 = DAY * 86400.0 + 600
WARM = "127.0.0.23"


def config(tmp_path: Path) -> Path:
    schedule = tmp_path / "tiny.toml"
    schedule.write_text('name = "tiny"\n[caps]\ngoogle = [100, 300, 900]\n'
                        'other = [100, 300, 900]\n')
    text = EXAMPLE.read_text().replace(
        "[store]\n", f'[store]\nurl = "sqlite:///{tmp_path}/pw.db"\n', 1)
    text = text.replace('ip_schedule = "sparkpost"\ndomain_schedule = "week-one"\n',
                        f'schedule_files = ["{schedule}"]\nip_schedule = "tiny"\n'
                        'domain_schedule = "tiny"\n', 1)
    text = text.replace('domains = ["fitclub.example"]\n',
                        'domains = ["fitclub.example", "go.fitclub.example"]\n'
                        'warmup_domains = ["go.fitclub.example"]\n', 1)
    path = tmp_path / "poolwarden.toml"
    path.write_text(text)
    return path


def deliveries(n: int, *, day: int, provider: str = "google", kind=EventKind.DELIVERED):
    return many(kind, n, tenant="fitclub", ip=WARM, provider=provider,
                time=day * 86400.0 + 3600, sending_domain="fitclub.example")


def test_stage_advances_on_delivered_volume_and_feeds_the_caps(tmp_path: Path) -> None:
    loaded = load_config(config(tmp_path))
    store = open_store(loaded.store_url)
    try:
        engine = Engine(loaded, store, now=T0)
        engine.advance_warmup(T0)  # day 1 begins: stage 1 everywhere
        assert engine.snapshot(T0).limits.ip_caps[(WARM, "google")].limit == 100
        # day 1: Google accepted 95 of 100, Yahoo only 40
        engine.add_events(deliveries(95, day=DAY))
        engine.add_events(deliveries(40, day=DAY, provider="yahoo"))
        t1 = T0 + 86400
        notes = Engine(loaded, store, now=t1).advance_warmup(t1)
        assert any("google" in n and "stage 2: cap 300 a day" in n for n in notes), notes
        assert any("yahoo" in n and "held: delivered 40 of the 100 cap" in n for n in notes)
        snap = Engine(loaded, store, now=t1).snapshot(t1)
        assert snap.limits.ip_caps[(WARM, "google")].limit == 300
        assert snap.limits.ip_caps[(WARM, "yahoo")].limit == 100
        assert "stage 2 of 3 of 'tiny' (day 2)" in snap.limits.ip_caps[(WARM, "google")].why
        # the stage is stored: a new engine (another process) sees the same
        detail = Engine(loaded, store, now=t1).warmup().ip_detail(WARM, t1)
        assert detail is not None and detail["stages"]["google"] == 2
        assert detail["stages"]["yahoo"] == 1 and detail["stage"] == 1
        # judging again the same day changes nothing
        assert Engine(loaded, store, now=t1).advance_warmup(t1) == []
    finally:
        store.close()


def test_new_sending_domain_is_capped_per_provider(tmp_path: Path) -> None:
    loaded = load_config(config(tmp_path))
    store = open_store(loaded.store_url)
    try:
        snap = Engine(loaded, store, now=T0).snapshot(T0)
        assert snap.limits.domain_caps[("go.fitclub.example", "google")].limit == 100
        counts = CapCounter(DAY)
        for _ in range(100):
            counts.add("127.0.0.13", "fitclub", "go.fitclub.example", "google")
        new = decide(RouteRequest("a@gmail.com", sender="x@go.fitclub.example"), snap, T0,
                     counts=counts)
        assert new.action is Action.ROUTE and new.pool == "shared-new"
        assert "new domain go.fitclub.example → google" in new.reason
        old = decide(RouteRequest("a@gmail.com", sender="x@fitclub.example"), snap, T0,
                     counts=counts)
        assert old.ip == WARM  # the established domain is not capped
    finally:
        store.close()
