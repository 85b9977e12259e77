"""End to end with the real Postfix in its private namespace and a real Knot DNS inside it:
the MX rollup and blocklist listings as the routing sees them, and mail already queued on a
listed IP moved off it, exactly once, even when poolwarden is killed in the middle.

* A company domain whose MX is the test Google counts as Google once monitord has resolved
  it: under ``major-via-shared`` its mail leaves from the shared pool (before that, as
  "other", from the tenant's own IP: the agent never waits for DNS).
* bigretail's dedicated IP 127.0.0.21 gets mail deferred by the sink (451 for that source
  address), then Knot lists it: monitord drains it, no new mail leaves from it, and the
  queued mail is re-queued through ``pw-reroute`` and the policy check and arrives from the
  shared pool, each message once. A delisting brings the IP back.
* kill -9 of ``serve`` while that re-queue runs: after a restart every message is delivered
  exactly once, none from the listed IP.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolwarden.adapters import reroute_pipe
from poolwarden.adapters.postfix_reroute import reroute_main_cf, reroute_master_cf
from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.core.blocklists import ListKind
from tests.e2e.support import EXAMPLE, postfix
from tests.services.feedback.knot import KNOTD, KnotServer
from tests.services.monitors.zones import lab_lists, missing, monitors_toml
from tests.support.postfix_lab import SINK_DOMAINS, LabError, PostfixLab, lab_unavailable

pytestmark = postfix

LISTED = "127.0.0.21"  # bigretail's dedicated IP
SHARED = {"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"}
SENDER = "orders@bigretail.example"
DNS_PORT = 5300
PROVIDERS = """
[[providers]]
name = "google"
domains = ["gmail.com", "googlemail.com"]
mx_suffixes = ["google.com", "googlemail.com", "google.test"]
major = true
"""
BASE_RECORDS = ["corp-on-google MX 1 aspmx.l.google", "aspmx.l.google A 127.0.1.1"]


def listing_records(ip: str) -> list[str]:
    out = []
    for b in lab_lists():
        if b.kind is ListKind.IP:
            owner = b.query_name(ip).removesuffix(".test")
            out += [f"{owner} A {next(iter(b.answers))}", f'{owner} TXT "e2e listing"']
    return out


class NsKnot(KnotServer):
    """Knot inside the lab's namespace (where serve runs), on 127.0.0.1:5300."""

    def __init__(self, lab: PostfixLab, workdir: Path) -> None:
        super().__init__(workdir, prefix=lab.ns_command(), port=DNS_PORT)
        self.lab = lab

    def soa_serial(self) -> int | None:
        done = self.lab.run_in_ns("kdig", "@127.0.0.1", "-p", str(DNS_PORT), "+short",
                                  "+time=1", "+retry=0", "SOA", "test.", check=False)
        parts = done.stdout.split()
        return int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostfixLab, NsKnot]]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    if KNOTD is None or shutil.which("kdig") is None:
        missing("knotd and kdig are not installed (scripts/setup.sh installs knot)")
    here = tmp_path_factory.mktemp("blocklist-e2e")
    config = here / "poolwarden.toml"
    config.write_text(EXAMPLE.read_text())  # replaced below, once the lab's paths are known
    lab = PostfixLab(config, sink_domains=(*SINK_DOMAINS, "corp-on-google.test"),
                     log_level="INFO")
    done = lab.dir / "reroute-done"
    done.mkdir()
    shutil.chown(done, "nobody")
    lab.extra_main_cf = reroute_main_cf(lab.policy_endpoint)
    lab.extra_master_cf = reroute_master_cf(["/usr/bin/python3", reroute_pipe.__file__],
                                            str(done))
    config.write_text(
        EXAMPLE.read_text().replace("[store]", f'[policyd]\npostfix_config_dir = "{lab.etc}"'
                                    "\n\n[store]", 1)
        + PROVIDERS + "\n"
        + monitors_toml(f"127.0.0.1:{DNS_PORT}",
                        extra="blocklist_interval = 10.0\ndelist_quiet_period = 0.0"))
    knot: NsKnot | None = None
    try:
        lab._make_dirs()
        lab._start_namespace()
        knot = NsKnot(lab, here / "knot")
        (here / "knot").mkdir()
        knot.start(BASE_RECORDS)
        lab._write_postfix_config()
        lab.start_sink()
        lab.start_agent()
        lab._start_postfix()
        yield lab, knot
    except BaseException:
        print(lab.tail(80))
        raise
    finally:
        if knot is not None:
            knot.stop()
        lab.stop()


def peers(lab: PostfixLab, message_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {m: [] for m in message_ids}
    for d in lab.deliveries(message_ids):
        found[d.message_id].append(d.peer)
    return found


def send(lab: PostfixLab, sender: str, rcpt: str) -> str:
    result = lab.send(sender, (rcpt,))
    assert list(result.accepted) == [rcpt], result
    return result.message_id


def queue_on_listed_ip(lab: PostfixLab, count: int) -> list[str]:
    """``count`` messages deferred on 127.0.0.21 (the sink refuses that source for now)."""
    lab.script_sink([{"peer": LISTED, "reply": "451 4.2.0 try again later (e2e)"}])
    rcpts = [f"q{i}-{time.time_ns()}@gmail.com" for i in range(count)]
    ids = [send(lab, SENDER, rcpt) for rcpt in rcpts]

    def all_deferred_once() -> bool:  # the lab retries every 1-2 s: read the log
        log = lab.log_text()
        return all(re.search(rf"pw-127-0-0-21/smtp\[\d+\]: \S+: to=<{re.escape(r)}>.*"
                             r"status=deferred", log) for r in rcpts)

    lab.wait_until(all_deferred_once, 30, f"{count} messages deferred on {LISTED}")
    assert not any(peers(lab, ids).values())
    return ids


def test_company_domain_at_google_rides_the_shared_pool(lab) -> None:
    lab, _ = lab
    first = send(lab, "news@travelhub.example", "ceo@corp-on-google.test")
    # the agent has now seen the domain; monitord resolves its MX off the routing path
    deadline = time.time() + 20
    while True:
        later = send(lab, "news@travelhub.example", "cfo@corp-on-google.test")
        (delivery,) = lab.wait_delivered(1, timeout=30, message_ids=[later])
        if delivery.peer in SHARED or time.time() > deadline:
            break
        time.sleep(1)
    assert delivery.peer in SHARED, "corp-on-google.test never counted as Google"
    (early,) = lab.wait_delivered(1, timeout=30, message_ids=[first])
    assert early.peer in SHARED | {"127.0.0.22"}  # before resolution: "other", own IP
    # and it counts as Google against the daily caps (the agent's counts, flushed)
    lab.wait_until(lambda: google_count(lab, delivery.peer) >= 1, 10,
                   "the Google count of the shared IP")


def google_count(lab: PostfixLab, ip: str) -> int:
    store = open_store(load_config(lab.config).store_url)
    try:
        counts = store.warmup_counts(int(time.time() // 86400))
    finally:
        store.close()
    return min(counts.get(("ip", ip, "google"), 0),
               counts.get(("tenant", "travelhub", "google"), 0))


def test_listing_moves_queued_mail_off_the_ip_once(lab) -> None:
    lab, knot = lab
    queued = queue_on_listed_ip(lab, 5)
    knot.reload(BASE_RECORDS + listing_records(LISTED))
    lab.wait_delivered(5, timeout=90, message_ids=queued)
    lab.script_sink([])  # 127.0.0.21 would be accepted now: a retry from it would show
    fresh = [send(lab, SENDER, f"new{i}@gmail.com") for i in range(3)]
    lab.wait_delivered(3, timeout=30, message_ids=fresh)
    time.sleep(4)  # a copy retried from the listed IP would arrive within the lab's backoff
    got = peers(lab, queued + fresh)
    assert all(len(p) == 1 for p in got.values()), got  # each message exactly once
    assert all(p[0] in SHARED for p in got.values()), got  # none from the listed IP
    assert "queued message(s) off 127.0.0.21" in lab.agent_log_text()
    assert "pw-reroute" in lab.log_text()  # they went through the reroute pipe


def wait_ip_back(lab: PostfixLab, knot: NsKnot) -> str | None:
    """Delist 127.0.0.21 and send until mail leaves from it again; the last source seen."""
    knot.reload(BASE_RECORDS)
    deadline = time.time() + 40
    peer = None
    while time.time() < deadline:
        message = send(lab, SENDER, f"back-{time.time_ns()}@gmail.com")
        (delivery,) = lab.wait_delivered(1, timeout=30, message_ids=[message])
        peer = delivery.peer
        if peer == LISTED:
            break
        time.sleep(1)
    return peer


def test_delisting_brings_the_ip_back(lab) -> None:
    lab, knot = lab
    assert wait_ip_back(lab, knot) == LISTED, "the delisted IP did not come back"


@pytest.mark.parametrize("moment", ["filter written", "copies in flight"])
def test_kill9_during_requeue_delivers_each_message_once(lab, moment) -> None:
    lab, knot = lab
    assert wait_ip_back(lab, knot) == LISTED
    queued = queue_on_listed_ip(lab, 8)
    reroutes_before = lab.log_text().count("pw-reroute")
    knot.reload(BASE_RECORDS + listing_records(LISTED))
    master = lab.etc / "master.cf"

    def moving() -> bool:  # pickup carries the reroute filter: the re-queue has begun
        return "content_filter=pw-reroute" in master.read_text()

    def in_flight() -> bool:  # the pipe has handed copies to the policy check
        return lab.log_text().count("pw-reroute") > reroutes_before

    try:
        lab.wait_until(moving if moment == "filter written" else in_flight, 60,
                       f"the re-queue ({moment})", interval=0.01)
    except LabError:
        pytest.fail(f"monitord never got to '{moment}'")
    lab.kill_agent()
    lab.script_sink([])  # the listed IP would be accepted: any retry from it would show
    time.sleep(2)  # the helper meets a dead policy service: 451, the copy stays queued
    lab.start_agent()
    lab.wait_delivered(8, timeout=120, message_ids=queued)
    time.sleep(4)
    got = peers(lab, queued)
    counts = Counter(len(p) for p in got.values())
    assert counts == Counter({1: 8}), got  # none lost, none twice
    assert all(p[0] in SHARED for p in got.values()), got
    assert wait_ip_back(lab, knot) == LISTED  # delisted: mail leaves from it again ...
    lab.wait_until(lambda: not moving(), 30, "pickup's reroute filter to be removed")
