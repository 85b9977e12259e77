"""Why held mail is released with ``postsuper -H`` and not ``-r`` (docs/testing.md A1), on a real
Postfix (``postfix_lab``).

A suspended tenant's mail is held at RCPT and given its release route at END-OF-MESSAGE
(``FILTER pw-127-0-0-21:``, a ``content_filter`` envelope record, seen with ``postcat -e``).
Then one message is requeued with ``postsuper -r`` and the other released through the API
(``-H``). The ``-H`` one keeps the record and leaves from the tenant's IP. The ``-r`` one goes
back through pickup and cleanup, which write a new queue file without the record (postsuper(1):
a requeued message gets only main.cf's ``content_filter``, as a local submission would); smtpd
never sees it, so the routing agent is not asked again and cannot re-route it; with our
``default_transport = retry:`` it is deferred as "no egress route chosen" and never delivered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from poolwarden.adapters.postqueue import run_tool
from tests.e2e.support import held, postfix, send_to_hold, start_lab
from tests.http.conftest import Api, lab_api
from tests.support.postfix_lab import PostfixLab

TENANT, SENDER = "bigretail", "requeue@bigretail.example"
ROUTE = "content_filter: pw-127-0-0-21:"  # bigretail's dedicated IP, as postcat -e shows it


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()


@pytest.fixture
def api(lab: PostfixLab) -> Iterator[Api]:
    yield from lab_api(lab)


def pin(api: Api, lab: PostfixLab, tier: str) -> None:
    version = max(lab.snapshot_versions())
    response = api.call("POST", "/api/v1/overrides",
                        json={"tenant": TENANT, "tier": tier, "reason": "requeue test"})
    assert response.status_code == 201, response.text
    lab.wait_snapshot_after(version, timeout=10)


def envelope(api: Api, queue_id: str) -> list[str]:
    """The envelope records of a queued message (``postcat -e``)."""
    return run_tool("postcat", api.ctx.postfix_config_dir, "-e", "-q", queue_id).splitlines()


def message_id_of(lab: PostfixLab, queue_id: str) -> str:
    found = re.search(rf"cleanup\[\d+\]: {queue_id}: message-id=(<[^>]+>)", lab.log_text())
    assert found, queue_id
    return found.group(1)


def requeued_as(lab: PostfixLab, queue_id: str) -> str | None:
    found = re.search(rf"pickup\[\d+\]: (\w+): uid=\d+ .*orig_id={queue_id}\b", lab.log_text())
    return found.group(1) if found else None


@postfix
def test_requeue_drops_the_route_and_release_keeps_it(lab: PostfixLab, api: Api) -> None:
    pin(api, lab, "suspended")
    send_to_hold(lab, SENDER, "requeue", 2, concurrency=1)
    by_id = {q: next(line for line in envelope(api, q) if "message_arrival_time" in line)
             for q in held(lab, SENDER)}
    for queue_id in by_id:
        assert ROUTE in envelope(api, queue_id)  # the agent's END-OF-MESSAGE FILTER
    pin(api, lab, "risky")  # the tenant may send again: release is allowed

    requeued, released = sorted(by_id)
    run_tool("postsuper", api.ctx.postfix_config_dir, "-r", requeued)
    run_tool("postkick", api.ctx.postfix_config_dir, "public", "pickup", "W")  # not its 60 s poll
    lab.wait_until(lambda: requeued_as(lab, requeued) is not None, 30, "pickup of -r mail")
    new_id = requeued_as(lab, requeued)
    assert new_id is not None and new_id != requeued
    lab.wait_until(lambda: re.search(
        rf"{new_id}: to=<[^>]+>, relay=none, .*status=deferred \(poolwarden: no egress route "
        r"chosen", lab.log_text()) is not None, 30, "the requeued message deferred")
    after = envelope(api, new_id)
    assert not any(line.startswith("content_filter:") for line in after)  # the route is gone
    assert by_id[requeued] in after  # same arrival time: only the route was lost

    done = api.call("POST", "/api/v1/held/release", json={"tenant": TENANT})
    assert done.status_code == 200 and done.json()["queue_ids"] == [released]
    [delivery] = lab.wait_delivered(1, timeout=30, message_ids=[message_id_of(lab, released)])
    assert delivery.peer == "127.0.0.21"  # the route stored with the message

    # smtpd never saw the requeued message, so the agent was not asked to route it again
    assert not any("smtpd" in line for line in lab.log_text().splitlines()
                   if new_id in line)
    assert lab.deliveries([message_id_of(lab, requeued)]) == []
    queue = {m["queue_id"]: m["queue_name"] for m in lab.postqueue_json()}
    assert queue.get(new_id) == "deferred"
    run_tool("postsuper", api.ctx.postfix_config_dir, "-d", new_id)
