"""The feedback LMTP listener on a real socket, driven by smtplib.LMTP, storing into SQLite."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from poolwarden.adapters.listeners import Listen
from poolwarden.adapters.sqlstore import open_store
from poolwarden.core.reputation import Scope
from poolwarden.services.feedback.intake import FeedbackService
from poolwarden.services.feedback.lmtpd import LmtpServer, parse_listen
from tests.services.feedback.support import VERP_DOMAIN, arf, dsn, load, return_path, service

FBL = f"fbl@{VERP_DOMAIN}"


def run_with_server(svc: FeedbackService, listen: Listen,
                    client: Callable[[str], Any]) -> tuple[Any, LmtpServer]:
    async def main() -> tuple[Any, LmtpServer]:
        server = LmtpServer(svc, max_message_bytes=svc.settings.max_message_bytes,
                            hostname="lmtp.test", socket_group=None, timeout=30)
        await server.start([listen])
        try:
            result = await asyncio.wait_for(asyncio.to_thread(client, server.addresses[0]), 60)
        finally:
            await server.stop()
        return result, server

    return asyncio.run(main())


def connect(address: str) -> smtplib.LMTP:
    if address.startswith("unix:"):
        return smtplib.LMTP(address[5:])
    host, _, port = address[4:].rpartition(":")
    return smtplib.LMTP(host, int(port), timeout=30)


def transaction(lmtp: smtplib.LMTP, sender: str, recipients: list[str],
                message: bytes) -> list[tuple[int, bytes]]:
    """MAIL, RCPT..., DATA and every per-recipient reply (smtplib reads only the first)."""
    lmtp.ehlo_or_helo_if_needed()  # LHLO
    code, reply = lmtp.mail(sender)
    assert code == 250, reply
    for rcpt in recipients:
        code, reply = lmtp.rcpt(rcpt)
        assert code == 250, reply
    replies = [lmtp.data(message)]
    replies.extend(lmtp.getreply() for _ in recipients[1:])
    return replies


def test_lmtp_stores_trusted_and_untrusted_feedback_and_survives_bad_messages(
        tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    svc = service(load(tmp_path), store)
    good = return_path("bigretail", "L1", "127.0.0.21")
    forged = return_path("bigretail", "L2", "127.0.0.21")[:-len(VERP_DOMAIN) - 3] + \
        "aa@" + VERP_DOMAIN
    other = return_path("fitclub", "L3", "127.0.0.23")
    oversize = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100  # > 1 MiB cap

    def client(address: str) -> dict[str, list[tuple[int, bytes]]]:
        out: dict[str, list[tuple[int, bytes]]] = {}
        with connect(address) as lmtp:
            out["valid"] = transaction(lmtp, "", [good], dsn(good))
            out["forged"] = transaction(lmtp, "", [forged], dsn(forged, "eve@gmail.com"))
            out["fbl"] = transaction(lmtp, "feedback@fbl.example.org", [FBL], arf(good))
            out["not-fbl"] = transaction(lmtp, "abuse@forger.example", [FBL],
                                         arf(good, sender="abuse@forger.example",
                                             recipient="carol@yahoo.com"))
            out["oversize"] = transaction(lmtp, "", [good, FBL], oversize)
            out["long-line"] = transaction(lmtp, "", [good, other],
                                           b"Subject: " + b"A" * 5000 + b"\r\n\r\nx\r\n")
            out["after"] = transaction(lmtp, "", [other, FBL], dsn(other, "dan@outlook.com"))
            code, _ = lmtp.noop()
            assert code == 250
        return out

    try:
        replies, server = run_with_server(svc, Listen("tcp", host="127.0.0.1", port=0), client)
        codes = {name: [code for code, _ in got] for name, got in replies.items()}
        assert codes == {"valid": [250], "forged": [250], "fbl": [250], "not-fbl": [250],
                         "oversize": [552, 552], "long-line": [500, 500], "after": [250, 250]}
        assert b"trusted (bounce)" in replies["valid"][0][1]
        assert b"untrusted (bounce)" in replies["forged"][0][1]
        assert b"trusted (complaint)" in replies["fbl"][0][1]
        assert b"untrusted (complaint)" in replies["not-fbl"][0][1]
        assert b"trusted (bounce)" in replies["after"][1][1]

        counters = {(r.scope.value, r.scope_id): r.counts for r in store.counters(since_day=0)
                    if r.provider == "*"}
        assert counters[("tenant", "bigretail")].hard_bounces == 1
        assert counters[("tenant", "bigretail")].complaints == 1
        assert counters[("ip", "127.0.0.21")].hard_bounces == 1
        assert counters[("tenant", "fitclub")].hard_bounces == 1
        assert counters[("ip", "127.0.0.23")].hard_bounces == 1
        assert store.event_count() == 3
        assert store.feedback_counts() == {"trusted": 3, "untrusted": 2, "rejected": 2}
        reasons = sorted(r.reason for r in store.feedback(trusted=False))
        assert reasons == ["complaint sender abuse@forger.example is not a configured FBL "
                           "source", "no valid VERP token", "rejected: line too long",
                           "rejected: too large (over max_message_bytes)"]
        assert server.replies == {"250": 5, "552": 1, "500": 1}
    finally:
        store.close()


def test_lmtp_on_a_unix_socket_with_an_event_per_kind(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    svc = service(load(tmp_path), store)
    rp = return_path("travelhub", "U1", "127.0.0.22")
    socket_path = tmp_path / "fb.sock"

    def client(address: str) -> list[tuple[int, bytes]]:
        assert address == f"unix:{socket_path}"
        assert oct(socket_path.stat().st_mode & 0o777) == "0o660"
        with connect(address) as lmtp:
            return transaction(lmtp, "", [rp], dsn(rp, status="4.2.2",
                                                   diagnostic="452 4.2.2 Mailbox full"))

    try:
        replies, _ = run_with_server(svc, Listen("unix", path=str(socket_path)), client)
        assert [code for code, _ in replies] == [250]
        assert not socket_path.exists()  # removed at stop
        [row] = store.feedback()
        assert row.trusted and row.tenant == "travelhub" and row.bounce_class == "soft"
        window = svc.engine.ledger.window(Scope.TENANT, "travelhub",
                                          end_day=int(row.received_at // 86400), days=30)
        assert window.soft_bounces == 1 and window.hard_bounces == 0
    finally:
        store.close()


@pytest.mark.parametrize(("text", "ok"), [
    ("tcp:127.0.0.1:10041", True), ("tcp:[::1]:10041", True), ("tcp:localhost:1", True),
    ("unix:/run/pw.sock", True), ("tcp:0.0.0.0:10041", False), ("tcp:192.0.2.1:25", False),
    ("udp:127.0.0.1:1", False),
])
def test_listen_addresses_are_loopback_or_unix(text: str, ok: bool) -> None:
    if ok:
        assert parse_listen(text).kind in ("tcp", "unix")
    else:
        with pytest.raises(ValueError, match="tcp:HOST:PORT|loopback"):
            parse_listen(text)
