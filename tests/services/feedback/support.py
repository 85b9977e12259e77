"""Builders for feedback tests: a configuration with VERP keys, engines, DSN and ARF mail."""

from __future__ import annotations

import itertools
from pathlib import Path

from poolwarden.adapters.memory import MemoryStore
from poolwarden.config.load import LoadedConfig, load_config_text
from poolwarden.ports import Store
from poolwarden.services.feedback.intake import FeedbackService
from poolwarden.services.feedback.settings import feedback_settings
from poolwarden.services.reputation.engine import Engine
from poolwarden.wire import verp

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "poolwarden.toml"
CORPUS = ROOT.parent / "shared" / "corpus"
SECRET = b"test-verp-secret-0123456789abcdef"
OLD_SECRET = b"old-verp-secret-0123456789abcdef"
VERP_DOMAIN = "bounces.example.net"
NOW = 1_780_000_000.0  # a fixed clock: 2026-05-28
DATE = "Thu, 28 May 2026 09:00:00 +0000"

FEEDBACK_SECTION = f"""
[feedback]
verp_secrets = ["{SECRET.decode()}", "{OLD_SECRET.decode()}"]
verp_domain = "{VERP_DOMAIN}"
fbl_sources = ["fbl.example.org", "staff@hotmail.com"]
fbl_require_dkim = false  # the From allowlist on its own; DKIM: test_dkim.py
local_reporting_mtas = ["mta.example.net"]
max_message_bytes = 1048576
max_events_per_message = 5

[traps]
addresses = ["Trap1@Spamtrap.Example"]
domains = ["traps.example"]
"""

_ids = itertools.count(1)


def config_text(extra: str = FEEDBACK_SECTION) -> str:
    return EXAMPLE.read_text(encoding="utf-8") + extra


def load(tmp_path: Path, extra: str = FEEDBACK_SECTION) -> LoadedConfig:
    path = tmp_path / "poolwarden.toml"
    path.write_text(config_text(extra), encoding="utf-8")
    return load_config_text(path.read_text(encoding="utf-8"), file=str(path))


def service(config: LoadedConfig, store: Store | None = None) -> FeedbackService:
    engine = Engine(config, store or MemoryStore(), now=NOW)
    return FeedbackService(engine, feedback_settings(config), clock=lambda: NOW)


def return_path(tenant: str = "bigretail", ref: str = "Q1A2B3C4D5", ip: str | None = "127.0.0.21",
                secret: bytes = SECRET) -> str:
    return verp.encode(secret, tenant, ref, ip, VERP_DOMAIN)


def dsn(rp: str, recipient: str = "ann@gmail.com", *, status: str = "5.1.1",
        action: str = "failed", diagnostic: str = "550 5.1.1 <{r}>: Recipient address "
        "rejected: User unknown", message_id: str | None = None, reporting_mta: str =
        "mx.gmail.example", extra_recipients: tuple[str, ...] = ()) -> bytes:
    """An RFC 3464 bounce of a message whose return path was ``rp``, sent back to ``rp``."""
    mid = message_id or f"<dsn-{next(_ids)}@{reporting_mta}>"
    blocks = []
    for r in (recipient, *extra_recipients):
        blocks.append(f"Final-Recipient: rfc822; {r}\r\nAction: {action}\r\nStatus: {status}\r\n"
                      f"Diagnostic-Code: smtp; {diagnostic.format(r=r)}\r\n")
    return (
        f"From: MAILER-DAEMON@{reporting_mta}\r\nTo: {rp}\r\nDate: {DATE}\r\n"
        f"Message-ID: {mid}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting_mta}\r\n\r\n" + "\r\n".join(blocks) +
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{rp}>\r\nFrom: news@bigretail.example\r\nTo: {recipient}\r\n"
        "Message-ID: <orig-1@bigretail.example>\r\n"
        "\r\n--B--\r\n"
    ).encode()


def arf(rp: str, *, sender: str = "feedback@fbl.example.org", recipient: str = "bob@yahoo.com",
        feedback_type: str = "abuse", message_id: str | None = None) -> bytes:
    """An RFC 5965 complaint about a message whose return path was ``rp``."""
    mid = message_id or f"<arf-{next(_ids)}@fbl.example.org>"
    return (
        f"From: {sender}\r\nTo: fbl@{VERP_DOMAIN}\r\nDate: {DATE}\r\nMessage-ID: {mid}\r\n"
        "Subject: FW: spam report\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="A"\r\n'
        "\r\n--A\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "\r\n--A\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: TestFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{rp}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
        "Arrival-Date: Thu, 28 May 2026 08:00:00 +0000\r\nSource-IP: 127.0.0.21\r\n"
        "\r\n--A\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Return-Path: <{rp}>\r\nFrom: news@bigretail.example\r\nTo: {recipient}\r\n"
        "Message-ID: <orig-2@bigretail.example>\r\nSubject: Deals\r\n\r\nBuy now.\r\n"
        "\r\n--A--\r\n"
    ).encode()
