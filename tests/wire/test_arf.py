"""wire.arf: complaint reports (ARF, JMRP, SES JSON, Apple unsubscribe) via wire.dsn.parse."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from poolwarden.wire.arf import FEEDBACK_TYPES, normalise_type, parse_complaints
from poolwarden.wire.dsn import parse

ARF = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "arf"
needs_corpus = pytest.mark.skipif(
    not (ARF / "manifest.csv").is_file(),
    reason=f"ARF corpus not found at {ARF} (../shared/corpus beside the repo)",
)


def _manifest() -> list[dict[str, str]]:
    if not (ARF / "manifest.csv").is_file():
        return []
    with (ARF / "manifest.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@needs_corpus
@pytest.mark.parametrize("row", [pytest.param(r, id=r["file"]) for r in _manifest()])
def test_corpus_file_is_a_complaint_of_the_expected_type(row: dict[str, str]) -> None:
    result = parse((ARF / row["file"]).read_bytes())
    assert result.kind == "complaint"
    assert result.feedback_type == row["expected_feedback_type"]
    assert result.recipients == []
    assert len(result.complaints) == int(row["n_reports"])
    if row["user_agent"]:
        assert result.complaints[0].user_agent == row["user_agent"]


@needs_corpus
@pytest.mark.parametrize("path", sorted(ARF.glob("*.expected.json")) if ARF.is_dir() else [],
                         ids=lambda p: p.name)
def test_mail_auth_expected_fields(path: Path) -> None:
    expected = json.loads(path.read_text())
    complaint = parse_complaints(path.with_name(path.name.replace(".expected.json", ".eml"))
                                 .read_bytes())[0]
    assert complaint.source_ip == expected["source_ip"]
    assert complaint.user_agent == expected["user_agent"]
    if expected.get("original_rcpt_to"):
        assert complaint.recipient == expected["original_rcpt_to"].strip("<>")
    if expected.get("original_mail_from"):
        assert complaint.original_mail_from == expected["original_mail_from"].strip("<>")
    assert list(complaint.reported_domains) == expected["reported_domain"]


ARF_MSG = (
    b"From: fbl@isp.example\r\nTo: abuse@sender.example\r\nSubject: FW: Earn money\r\n"
    b'Content-Type: multipart/report; report-type=feedback-report; boundary="P"\r\n\r\n'
    b"--P\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
    b"--P\r\nContent-Type: message/feedback-report\r\n\r\n"
    b"Feedback-Type: opt-out\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
    b"Original-Mail-From: <bounce@sender.example>\r\nArrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\n"
    b"Source-IP: 192.0.2.1\r\nReported-Domain: sender.example\r\n"
    b"\r\n--P\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: <news@sender.example>\r\nTo: <victim@isp.example>\r\nMessage-ID: <m1@sender.example>"
    b"\r\nSubject: Earn money\r\n\r\nSpam\r\n--P--\r\n"
)


def test_arf_without_original_rcpt_to_uses_the_returned_message_to() -> None:
    result = parse(ARF_MSG)
    assert (result.kind, result.feedback_type) == ("complaint", "opt-out")
    (c,) = result.complaints
    assert c.recipient == "victim@isp.example"
    assert c.original_mail_from == "bounce@sender.example"
    assert c.original_message_id == "<m1@sender.example>"
    assert c.source_ip == "192.0.2.1"
    assert c.reported_domains == ("sender.example",)


def test_jmrp_forward() -> None:
    raw = (b"From: staff@hotmail.com\r\nSubject: complaint about message from 192.0.2.2\r\n"
           b'Content-Type: multipart/mixed; boundary="J"\r\n\r\n--J\r\n'
           b"Content-Type: message/rfc822\r\n\r\nX-HmXmrOriginalRecipient: victim@outlook.example"
           b"\r\nFrom: news@sender.example\r\nTo: victim@outlook.example\r\n\r\nhi\r\n--J--\r\n")
    result = parse(raw)
    assert (result.kind, result.feedback_type) == ("complaint", "abuse")
    assert result.complaints[0].recipient == "victim@outlook.example"
    assert result.complaints[0].format == "jmrp"


def test_ses_complaint_in_sns_envelope() -> None:
    inner = {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "c@example.net"}],
        "complaintFeedbackType": "not-spam", "userAgent": "ExampleISP"},
        "mail": {"source": "s@sender.example", "messageId": "0101-abc"}}
    body = json.dumps({"Type": "Notification", "Message": json.dumps(inner)}).encode()
    raw = b"From: no-reply@sns.amazonaws.com\r\nSubject: AWS Notification Message\r\n\r\n" + body
    result = parse(raw)
    assert (result.kind, result.feedback_type) == ("complaint", "not-spam")
    assert result.complaints[0].recipient == "c@example.net"
    assert result.complaints[0].original_message_id == "0101-abc"


def test_apple_unsubscribe_is_opt_out() -> None:
    raw = (b"From: user@icloud.example\r\nTo: list@sender.example\r\nSubject: unsubscribe\r\n"
           b"X-Apple-Unsubscribe: true\r\n\r\nunsubscribe\r\n")
    result = parse(raw)
    assert (result.kind, result.feedback_type) == ("complaint", "opt-out")
    assert result.complaints[0].recipient == "user@icloud.example"


@pytest.mark.parametrize(("raw", "want"), [
    ("abuse", "abuse"), ("Abuse", "abuse"), ("opt-out", "opt-out"),
    ("auth-failure", "auth-failure"),
    ("fraud", "fraud"), ("virus", "virus"), ("not-spam", "not-spam"), ("dkim", "auth-failure"),
    ("whatever", "other"),
])
def test_feedback_type_vocabulary(raw: str, want: str) -> None:
    assert normalise_type(raw) == want
    assert want in FEEDBACK_TYPES


def test_oversized_report_is_rejected_not_parsed() -> None:
    raw = ARF_MSG.replace(b"Subject: FW", b"Subject: " + b"x" * (2 * 1024 * 1024))
    assert parse_complaints(raw) == []
    assert parse(raw).problems[0].startswith("rejected: ")
