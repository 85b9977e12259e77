"""monitord against a real Knot: a listing is an event with consequences (stored with its
history, the IP drained from its pool, a listed dedicated IP follows the tenant's plan, a
pool whose every IP is listed defers), error codes never list, a delisting restores the
IP only after the quiet period, and the MX rollup reaches the snapshot without the agent
ever waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config_text
from poolwarden.core import rule_names
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.snapshot import Action
from poolwarden.services.monitors.monitord import Monitord
from poolwarden.services.reputation.engine import Engine
from tests.services.monitors.zones import (
    CLEAR_IP,
    ERROR_IP,
    LISTED_DOMAIN,
    LISTED_IP,
    blocklist_records,
    lab_config,
    mx_records,
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def setup(tmp_path: Path, port: int, *, extra: str = "", ips=(LISTED_IP, CLEAR_IP, ERROR_IP),
          body: str = "", in_process: bool = True, pool=None):
    text = lab_config(f"127.0.0.1:{port}", ips=ips, monitors_extra=extra, body=body, pool=pool)
    text = text.replace('url = "sqlite:///pw.db"', f'url = "sqlite:///{tmp_path}/pw.db"')
    config = load_config_text(text, file=str(tmp_path / "pw.toml"))
    store = open_store(config.store_url)
    clock = Clock()
    monitord = Monitord(lambda: config, store, clock=clock, in_process=in_process)
    return config, store, clock, monitord


def routed_ips(config, store, now, tenant="clean", n=60):
    snap = Engine(config, store, now=now).snapshot(now)
    return {decide(RouteRequest(recipient=f"u{i}@smallbiz.test", tenant=tenant), snap,
                   now).ip for i in range(n)}


def test_listing_drains_the_ip_and_is_stored_with_its_history(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port)
    changes = asyncio.run(monitord.blocklist_round())
    listed = {(c.target, c.list) for c in changes if c.change == "listed"}
    assert {t for t, _ in listed} == {LISTED_IP, LISTED_DOMAIN}  # never ERROR_IP
    ip_change = next(c for c in changes if c.target == LISTED_IP and c.list == "spamhaus-zen")
    assert ip_change.codes == ("127.0.0.2",) and "SBL" in ip_change.meaning
    assert "drained" in ip_change.consequence
    assert "Listed by spamhaus-zen" in ip_change.reason
    dom = next(c for c in changes if c.target == LISTED_DOMAIN)
    assert "spammy" in dom.consequence
    history = store.listing_history(target=LISTED_IP)
    assert len(history) == 6
    # the listed IP is drained; the error-coded one is unknown, so it keeps sending
    assert routed_ips(config, store, clock.now, n=200) == {CLEAR_IP, ERROR_IP}
    # a second round finds the same: no new change, the error IP still never listed
    clock.now += 60
    assert asyncio.run(monitord.blocklist_round()) == []
    assert all(s.target != ERROR_IP for s in store.listings() if s.listed)
    store.close()


def test_error_coded_ip_keeps_sending(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port, ips=(ERROR_IP, CLEAR_IP))
    asyncio.run(monitord.blocklist_round())
    assert routed_ips(config, store, clock.now, n=200) == {ERROR_IP, CLEAR_IP}
    assert monitord.stats.errors["spamhaus-zen"] == 1
    store.close()


def test_delisting_restores_after_the_quiet_period(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port,
                                           extra="delist_quiet_period = 600.0")
    asyncio.run(monitord.blocklist_round())
    assert LISTED_IP in monitord.listed()
    knot_own.reload([r for r in blocklist_records() if not r.startswith("2.0.0.127.")]
                    + mx_records())
    clock.now += 60
    assert asyncio.run(monitord.blocklist_round()) == []  # clear, but not quiet long enough
    assert LISTED_IP not in routed_ips(config, store, clock.now, n=200)
    clock.now += 599
    assert asyncio.run(monitord.blocklist_round()) == []  # 599 s of clear answers
    clock.now += 1
    changes = asyncio.run(monitord.blocklist_round())
    assert {c.change for c in changes} == {"delisted"}
    assert {c.target for c in changes} == {LISTED_IP}
    assert changes[-1].consequence.startswith("restored after 600 s")
    assert routed_ips(config, store, clock.now, n=200) == {LISTED_IP, CLEAR_IP, ERROR_IP}
    store.close()


def test_relisting_during_the_quiet_period_starts_it_again(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port,
                                           extra="delist_quiet_period = 600.0")
    asyncio.run(monitord.blocklist_round())
    records = blocklist_records() + mx_records()
    knot_own.reload([r for r in records if not r.startswith("2.0.0.127.")])
    clock.now += 500
    asyncio.run(monitord.blocklist_round())
    knot_own.reload(records)  # listed again
    clock.now += 50
    asyncio.run(monitord.blocklist_round())
    knot_own.reload([r for r in records if not r.startswith("2.0.0.127.")])
    clock.now += 500  # 1050 s after the first clear answer, but only 500 after the relisting
    assert asyncio.run(monitord.blocklist_round()) == []
    assert LISTED_IP in monitord.listed()
    store.close()


def test_on_listing_alert_keeps_the_ip_routed(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port,
                                           extra='on_listing = "alert"')
    changes = asyncio.run(monitord.blocklist_round())
    assert any(c.target == LISTED_IP and "alert only" in c.consequence for c in changes)
    assert LISTED_IP in routed_ips(config, store, clock.now, n=200)
    store.close()


DEDICATED = """
[[tenants]]
name = "bank"
plan = "dedicated"
domains = ["bank.test"]
dedicated_ips = ["127.0.0.2"]
warmup_overflow = "{overflow}"
"""


def test_listed_dedicated_ip_moves_the_tenant_per_its_plan(knot_own, tmp_path):
    for overflow, action in (("shared", Action.ROUTE), ("defer", Action.DEFER)):
        sub = tmp_path / overflow
        sub.mkdir()
        config, store, clock, monitord = setup(
            sub, knot_own.port, ips=(CLEAR_IP, ERROR_IP, LISTED_IP), pool=(CLEAR_IP, ERROR_IP),
            body=DEDICATED.format(overflow=overflow))
        # the dedicated IP must not be in the shared pool
        assert LISTED_IP in config.inventory.tenants[-1].dedicated_ips
        asyncio.run(monitord.blocklist_round())
        snap = Engine(config, store, now=clock.now).snapshot(clock.now)
        d = decide(RouteRequest(recipient="x@smallbiz.test", tenant="bank"), snap, clock.now)
        assert d.action is action, d
        assert d.rule == (rule_names.LISTED_OVERFLOW if overflow == "shared"
                          else rule_names.ALL_LISTED)
        assert "127.0.0.2 is blocklisted" in d.reason
        store.close()


def test_pool_with_every_ip_listed_defers(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port, ips=(LISTED_IP,))
    asyncio.run(monitord.blocklist_round())
    snap = Engine(config, store, now=clock.now).snapshot(clock.now)
    d = decide(RouteRequest(recipient="x@smallbiz.test", tenant="clean"), snap, clock.now)
    assert (d.action, d.rule) == (Action.DEFER, rule_names.ALL_LISTED)
    store.close()


def test_mx_rollup_reaches_the_snapshot(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port)
    published = []
    monitord._on_mx = lambda: published.append(dict(monitord.mx.learned()))
    changed = asyncio.run(monitord.mx_round({"corp-on-google.test", "smallbiz.test",
                                             "google-mail.test"}))
    assert changed and published == [{"corp-on-google.test": "google"}]
    snap = Engine(config, store, now=clock.now).snapshot(clock.now,
                                                          learned=monitord.mx.learned())
    assert snap.providers.for_domain("corp-on-google.test") == "google"
    assert snap.providers.for_domain("smallbiz.test") == "other"
    # the static tables know google-mail.test: it was never looked up
    assert "google-mail.test" not in monitord.mx.entries
    store.close()


def test_rounds_run_in_a_child_process(knot_own, tmp_path):
    config, store, clock, monitord = setup(tmp_path, knot_own.port, in_process=False)
    try:
        changes = asyncio.run(monitord.blocklist_round())
        assert {c.target for c in changes} == {LISTED_IP, LISTED_DOMAIN}
        assert asyncio.run(monitord.mx_round({"corp-on-m365.test"}))
        assert monitord.mx.learned() == {"corp-on-m365.test": "microsoft"}
    finally:
        monitord.close()
        store.close()
