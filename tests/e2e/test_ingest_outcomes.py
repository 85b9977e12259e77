"""End to end: mail routed by the agent through a real Postfix, outcomes read back from its log.

The sink answers 250, 451 4.2.0 (``tempfail*``) or 550 5.1.1 (``reject*``) by address; the
log ingestion must attribute each outcome to the right tenant and egress IP, and the
tenant's reputation counters in the store must show them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.core.reputation import Scope
from poolwarden.services.reputation.engine import Engine, day_of
from tests.e2e.support import NEW, postfix, start_lab
from tests.support.postfix_lab import PostfixLab


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()


def statuses(lab: PostfixLab) -> list[str]:
    return re.findall(r"to=<([^>]+)>.*? status=(sent|deferred|bounced)", lab.log_text())


@postfix
def test_each_outcome_lands_on_its_tenant_and_ip(lab: PostfixLab, tmp_path: Path) -> None:
    dedicated = lab.send("orders@bigretail.example",
                         ("ok1@gmail.com", "reject1@gmail.com", "tempfail1@gmail.com"))
    shared = lab.send("shop@cornerbakery.example",
                      ("ok2@smallbiz.example", "reject2@smallbiz.example"))
    assert dedicated.accepted and shared.accepted
    wanted = {"ok1@gmail.com", "reject1@gmail.com", "tempfail1@gmail.com",
              "ok2@smallbiz.example", "reject2@smallbiz.example"}
    lab.wait_until(lambda: wanted <= {rcpt for rcpt, _ in statuses(lab)}, 30,
                   "a status line for every recipient")
    time.sleep(1.5)  # the agent flushes its decision log every second
    # a copy, so the lab's fast retries of tempfail1 do not grow the log between imports
    log_copy = tmp_path / "postfix.log"
    log_copy.write_text(lab.log_text())
    retries = len(re.findall(r"to=<tempfail1@gmail.com>.*status=deferred", lab.log_text()))

    first = lab.poolwarden("ingest", "log", str(log_copy), "--config", str(lab.config))
    again = lab.poolwarden("ingest", "log", str(log_copy), "--config", str(lab.config))
    assert "0 events added" in again.stdout, again.stdout  # exactly once
    assert " 0 events added" not in first.stdout, first.stdout

    config = load_config(lab.config)
    store = open_store(config.store_url)
    try:
        engine = Engine(config, store, now=time.time())
        today = day_of(time.time())

        def counts(scope: Scope, scope_id: str) -> tuple[int, int, int]:
            c = engine.ledger.window(scope, scope_id, end_day=today, days=2)
            return c.delivered, c.hard_bounces, c.deferred

        # every deferral attempt counts towards the deferral rate
        assert retries >= 1
        assert counts(Scope.TENANT, "bigretail") == (1, 1, retries)
        assert counts(Scope.IP, "127.0.0.21") == (1, 1, retries)
        assert engine.ledger.window(Scope.TENANT, "bigretail", end_day=today, days=2,
                                    provider="google").volume == 2
        assert counts(Scope.TENANT, "corner-bakery") == (1, 1, 0)
        shared_ips = {ip for ip in NEW
                      if engine.ledger.window(Scope.IP_TENANT, f"{ip}|corner-bakery",
                                              end_day=today, days=2).volume}
        assert len(shared_ips) == 1  # both recipients of one message left from one IP
        assert engine.ledger.tenants_on_ip("127.0.0.21") == {"bigretail"}
    finally:
        store.close()
