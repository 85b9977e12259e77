"""DKIM on complaints: an FBL report is trusted only with a valid signature by its source.

Real keys (openssl) and a real DNS server (Knot on loopback) reached through the
``feedback.dkim_nameservers`` setting, as in production; nothing is mocked. The forged
complaints (a tampered body, a signature by another domain with its own valid key, a
selector with no key, no signature at all) all carry a genuine VERP token and an
allowed From address, so only DKIM stands between them and the tenant; the genuine
signed report is the control that proves the gate opens.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest

from poolwarden.adapters.listeners import Listen
from poolwarden.adapters.memory import MemoryStore
from poolwarden.config.load import LoadedConfig
from poolwarden.core.events import EventKind
from poolwarden.services.feedback.intake import DkimTemporaryError, FeedbackService
from poolwarden.services.feedback.lmtpd import LmtpServer
from poolwarden.services.feedback.mailfiles import ingest_files
from poolwarden.services.feedback.settings import feedback_settings
from poolwarden.services.reputation.engine import Engine
from tests.services.feedback.knot import DkimKey, KnotServer, knot, make_key
from tests.services.feedback.support import NOW, SECRET, VERP_DOMAIN, arf, load, return_path

FBL_DOMAIN = "fbl.example.test"
FBL_SENDER = f"feedback@{FBL_DOMAIN}"
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
          b"content-type"]


def section(nameserver: str, *, require: bool = True, timeout: float = 2.0) -> str:
    return f"""
[feedback]
verp_secrets = ["{SECRET.decode()}"]
verp_domain = "{VERP_DOMAIN}"
fbl_sources = ["{FBL_DOMAIN}"]
fbl_require_dkim = {"true" if require else "false"}
dkim_nameservers = ["{nameserver}"]
dkim_timeout = {timeout}
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DkimKey]:
    work = tmp_path_factory.mktemp("dkim-keys")
    return {"fbl": make_key("s1", FBL_DOMAIN, work),
            "evil": make_key("s1", "evil.test", work),
            "unpublished": make_key("gone", FBL_DOMAIN, work)}


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory: pytest.TempPathFactory,
               keys: dict[str, DkimKey]) -> Iterator[KnotServer]:
    published = [keys["fbl"], keys["evil"]]  # "unpublished" has no record: NXDOMAIN
    records = [f"{k.selector}._domainkey.{k.domain.removesuffix('.test')} IN TXT {k.txt()}"
               for k in published]
    with knot(tmp_path_factory.mktemp("knot"), records) as server:
        yield server


def sign(message: bytes, key: DkimKey) -> bytes:
    header = dkim.sign(message, key.selector.encode(), key.domain.encode(), key.private_pem,
                       include_headers=SIGNED)
    return bytes(header) + message


def complaint(ref: str, recipient: str = "bob@yahoo.com") -> bytes:
    return arf(return_path("bigretail", ref, "127.0.0.21"), sender=FBL_SENDER,
               recipient=recipient)


def service(config: LoadedConfig) -> FeedbackService:
    engine = Engine(config, MemoryStore(), now=NOW)
    return FeedbackService(engine, feedback_settings(config), clock=lambda: NOW)


def test_only_a_valid_signature_by_the_fbl_source_makes_a_complaint_trusted(
        tmp_path: Path, keys: dict[str, DkimKey], dns_server: KnotServer) -> None:
    svc = service(load(tmp_path, section(dns_server.address)))
    good = sign(complaint("G1"), keys["fbl"])
    tampered = sign(complaint("F1"), keys["fbl"]).replace(b"Buy now.", b"Buy NOW.")
    by_other_domain = sign(complaint("F2"), keys["evil"])
    no_key = sign(complaint("F3"), keys["unpublished"])
    unsigned = complaint("F4")
    header_changed = sign(complaint("F5"), keys["fbl"]).replace(
        b"Subject: FW: spam report", b"Subject: FW: spam reporT")

    results = {name: svc.process(raw, source="test", envelope_sender=FBL_SENDER)
               for name, raw in [("good", good), ("tampered", tampered),
                                 ("other-domain", by_other_domain), ("no-key", no_key),
                                 ("unsigned", unsigned), ("header-changed", header_changed)]}

    status = {name: a.status for name, (a, _) in results.items()}
    assert status == {"good": "trusted", "tampered": "untrusted",
                      "other-domain": "untrusted", "no-key": "untrusted",
                      "unsigned": "untrusted", "header-changed": "untrusted"}
    reasons = {name: a.reason for name, (a, _) in results.items()}
    prefix = f"complaint from {FBL_SENDER}: DKIM required (fbl_require_dkim): "
    assert reasons["good"] == ""
    assert reasons["tampered"].startswith(prefix + f"no valid signature by {FBL_DOMAIN}")
    assert "body hash mismatch" in reasons["tampered"]
    assert reasons["other-domain"] == (prefix + "signed by evil.test, not by the FBL source "
                                       f"domain {FBL_DOMAIN}")
    assert reasons["no-key"].startswith(prefix + f"no valid signature by {FBL_DOMAIN}")
    assert f"d={FBL_DOMAIN}" in reasons["no-key"]
    assert reasons["unsigned"] == prefix + "no DKIM signature"
    assert reasons["header-changed"].startswith(prefix + f"no valid signature by {FBL_DOMAIN}")

    # only the genuine report counts against the tenant; every forgery is kept as evidence
    assert [e.kind for a, _ in results.values() for e in a.events] == [EventKind.COMPLAINT]
    assert results["good"][1].events_added == 1
    store = svc.engine.store
    assert store.feedback_counts() == {"trusted": 1, "untrusted": 5, "rejected": 0}
    stored = sorted(r.reason for r in store.feedback(trusted=False))
    assert stored == sorted(reasons[n] for n in reasons if n != "good")
    assert svc.counts == {"trusted": 1, "untrusted": 5}


def test_a_signature_by_a_parent_source_domain_is_required_not_just_any(
        tmp_path: Path, keys: dict[str, DkimKey], dns_server: KnotServer) -> None:
    """The entry covers subdomains: a report From arf.fbl.example.test signed by
    fbl.example.test is trusted; the same report listed under another entry is not."""
    svc = service(load(tmp_path, section(dns_server.address)))
    raw = sign(complaint("S1").replace(f"From: {FBL_SENDER}".encode(),
                                       f"From: reports@arf.{FBL_DOMAIN}".encode()),
               keys["fbl"])
    assessment, _ = svc.process(raw, source="test")
    assert assessment.status == "trusted", assessment.reason


def test_dkim_off_trusts_the_allowlist_alone(tmp_path: Path, dns_server: KnotServer) -> None:
    svc = service(load(tmp_path, section(dns_server.address, require=False)))
    assessment, _ = svc.process(complaint("N1"), source="test", envelope_sender=FBL_SENDER)
    assert assessment.status == "trusted"


def test_a_dns_failure_stores_nothing_and_asks_for_the_message_again(
        tmp_path: Path, keys: dict[str, DkimKey], dns_server: KnotServer) -> None:
    """A key lookup that times out is not a forgery: nothing is judged, the LMTP client is
    told 451 (Postfix retries) and ``ingest mail`` lists the file; once DNS answers the
    same message is trusted."""
    silent = KnotServer(tmp_path)  # a port nothing answers on (never started)
    svc = service(load(tmp_path, section(f"127.0.0.1:{silent.port}", timeout=0.3)))
    raw = sign(complaint("T1"), keys["fbl"])
    with pytest.raises(DkimTemporaryError):
        svc.process(raw, source="test")
    assert sum(svc.engine.store.feedback_counts().values()) == 0

    message = tmp_path / "complaint.eml"
    message.write_bytes(raw)
    summary = ingest_files(svc, [message])
    assert (summary.messages, summary.rows_added) == (0, 0)
    assert [f for f, _ in summary.unreadable] == [str(message)]

    async def deliver() -> tuple[int, bytes]:
        server = LmtpServer(svc, max_message_bytes=svc.settings.max_message_bytes,
                            hostname="lmtp.test", socket_group=None, timeout=30)
        await server.start([Listen("tcp", host="127.0.0.1", port=0)])
        host, _, port = server.addresses[0][4:].rpartition(":")

        def client() -> tuple[int, bytes]:
            with smtplib.LMTP(host, int(port), timeout=30) as lmtp:
                lmtp.ehlo_or_helo_if_needed()
                lmtp.mail(FBL_SENDER)
                lmtp.rcpt(f"fbl@{VERP_DOMAIN}")
                try:
                    return lmtp.data(raw)
                except smtplib.SMTPDataError as exc:
                    return exc.smtp_code, exc.smtp_error

        try:
            return await asyncio.to_thread(client)
        finally:
            await server.stop()

    code, text = asyncio.run(deliver())
    assert code == 451 and b"4.4.3" in text, text
    assert sum(svc.engine.store.feedback_counts().values()) == 0

    # DNS back: the retried message is judged, and trusted
    fixed = service(load(tmp_path, section(dns_server.address)))
    assessment, _ = fixed.process(raw, source="test")
    assert assessment.status == "trusted"
