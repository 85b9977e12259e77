"""End to end with a real Postfix: warm-up overflow never leaves from IPs the tenant's SPF
does not authorize, and the operator is alerted before it would.

A loopback Knot serves ``fitclub.test TXT "v=spf1 ip4:127.0.0.23 -all"``: fitclub's own
warming IP only, not the shared pools. ``poolwarden domains --check`` (asking that Knot)
stores the findings; the alerter raises ``auth_route`` for the shared pools. Then, through
the lab (Postfix, the recording sink and ``poolwarden serve`` with
``routing.skip_spf_unauthorized``), with a tiny Google cap of 3 a day on 127.0.0.23:

* mail from ``coach@fitclub.test`` to Gmail: three leave from .23 (seen at the sink), the
  fourth would overflow to shared-new, which SPF refuses: it is answered 451 with the
  reason and nothing reaches the sink from another IP;
* mail from ``coach@fitclub.example`` (a domain without such a finding) still overflows
  to shared-new: the overflow itself works, only the SPF-breaking part is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.services.alerts.watcher import Alerter
from tests.e2e.support import EXAMPLE, NEW, postfix
from tests.services.feedback import knot as knot_mod
from tests.services.feedback.knot import KnotServer
from tests.support.postfix_lab import PostfixLab, lab_unavailable, running_lab
from tests.support.real_parts import missing

WARM = "127.0.0.23"
SCHEDULE = ('name = "e2e"\nsource = "test: a tiny cap"\n[caps]\ngoogle = [3, 6]\n'
            'yahoo = [2, 4]\nother = [1000, 2000]\n')


def guarded_config(tmp: Path, dns_port: int) -> Path:
    schedule = tmp / "e2e-schedule.toml"
    schedule.write_text(SCHEDULE)
    text = EXAMPLE.read_text()
    text = text.replace('ip_schedule = "sparkpost"\n',
                        f'schedule_files = ["{schedule}"]\nip_schedule = "e2e"\n', 1)
    text = text.replace("[store]\n", f'[store]\nurl = "sqlite:///{tmp}/pw.db"\n', 1)
    text = text.replace("[routing]\n", "[routing]\nskip_spf_unauthorized = true\n", 1)
    text = text.replace('domains = ["fitclub.example"]\n',
                        'domains = ["fitclub.example", "fitclub.test"]\n', 1)
    text += f'\n[domains]\nnameservers = ["127.0.0.1:{dns_port}"]\ntimeout = 2.0\n'
    path = tmp / "poolwarden.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    if knot_mod.KNOTD is None:
        missing("knotd is not installed (scripts/setup.sh installs knot)")
    tmp = tmp_path_factory.mktemp("spf-guard")
    dns = KnotServer(tmp)
    dns.start(['fitclub TXT "v=spf1 ip4:127.0.0.23 -all"', '_dmarc.fitclub TXT '
               '"v=DMARC1; p=reject"'])
    try:
        config = guarded_config(tmp, dns.port)
        checked = subprocess.run(
            [sys.executable, "-m", "poolwarden.entry", "domains", "--check", "--json",
             "--tenant", "fitclub", "--config", str(config)],
            capture_output=True, text=True, timeout=120, check=False)
        assert checked.returncode == 0, checked.stderr
    finally:
        dns.stop()
    with running_lab(config) as running:
        yield running


def sent_from(lab: PostfixLab, sender: str, rcpt: str) -> str:
    result = lab.send(sender, (rcpt,))
    assert list(result.accepted) == [rcpt], result
    (delivery,) = lab.wait_delivered(1, 20, [result.message_id])
    return delivery.peer


@postfix
def test_findings_are_stored_and_alerted_before_any_mail(lab: PostfixLab) -> None:
    config = load_config(lab.config)
    store = open_store(config.store_url)
    try:
        denied = {(f.domain, f.ip) for f, _ in store.auth_findings(tenant="fitclub")
                  if f.check == "spf-route" and f.status == "error"}
        assert {ip for domain, ip in denied if domain == "fitclub.test"} >= set(NEW)
        assert ("fitclub.test", WARM) not in denied
        alerts = Alerter(lambda: config, store, channels=[]).detect(0.0)
        routes = {a.numbers["route"] for a in alerts
                  if a.kind == "auth_route" and a.tenant == "fitclub"
                  and a.numbers["domain"] == "fitclub.test"}
        assert "shared-new" in routes
    finally:
        store.close()


@postfix
def test_overflow_to_a_pool_spf_refuses_is_skipped_at_the_sink(lab: PostfixLab) -> None:
    sender = "coach@fitclub.test"
    assert [sent_from(lab, sender, f"spf{i}@gmail.com") for i in range(3)] == [WARM] * 3
    result = lab.send(sender, ("spf3@gmail.com",))
    reply = result.rcpt_reply("spf3@gmail.com")
    assert reply is not None and reply.code == 451, result
    assert "SPF of fitclub.test does not authorize" in reply.text, reply
    assert not result.accepted
    assert lab.deliveries([result.message_id]) == []
    # the same tenant's other domain, with no SPF finding, overflows as before
    assert sent_from(lab, "coach@fitclub.example", "spf4@gmail.com") in NEW
    # and mail to providers under their caps keeps leaving from the warming IP
    assert sent_from(lab, sender, "spf0@yahoo.com") == WARM
