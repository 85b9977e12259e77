"""services.feedback.intake: attribution through the VERP token only, trust, caps (B4), idempotency.

Most tests run on the memory store; the store-backed paths (maildir import, I7 b) run on
SQLite in ``test_store_paths.py``.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from poolwarden.core.events import EventKind
from poolwarden.ports import DecisionRow
from poolwarden.services.feedback import intake as feedback_module
from poolwarden.services.feedback.intake import (
    Assessment,
    FeedbackService,
    MailIngestSummary,
    ingest_files,
    mailbox,
)
from poolwarden.wire import dsn as dsn_module
from tests.feedback.support import CORPUS, NOW, arf, dsn, load, return_path, service

STATUSES = {"trusted", "untrusted", "rejected"}


@pytest.fixture
def svc(tmp_path: Path) -> FeedbackService:
    return service(load(tmp_path))


def events_of(svc: FeedbackService) -> int:
    return svc.engine.store.event_count()


# -- attribution and trust ------------------------------------------------------------------


def test_a_bounce_with_our_token_becomes_a_hard_bounce_of_its_tenant_and_ip(
        svc: FeedbackService) -> None:
    assessment, stored = svc.process(dsn(return_path()), source="test")
    assert assessment.status == "trusted" and assessment.kind == "bounce"
    [event] = assessment.events
    assert event.kind is EventKind.HARD_BOUNCE
    assert (event.tenant, event.ip, event.provider) == ("bigretail", "127.0.0.21", "google")
    assert event.recipient_domain == "gmail.com"
    assert event.time == pytest.approx(1_779_958_800.0)  # the DSN's Date, not the clock
    assert stored.events_added == 1 and stored.rows_added == 1
    [row] = svc.engine.store.feedback()
    assert row.trusted and row.tenant == "bigretail" and row.bounce_reason == "userunknown"
    assert row.message_ref == "Q1A2B3C4D5" and row.dsn_status == "5.1.1"


def test_soft_bounce_and_old_key(svc: FeedbackService) -> None:
    from tests.feedback.support import OLD_SECRET

    raw = dsn(return_path(secret=OLD_SECRET), status="4.2.2",
              diagnostic="452 4.2.2 Mailbox full")
    assessment, _ = svc.process(raw, source="test")
    assert [e.kind for e in assessment.events] == [EventKind.SOFT_BOUNCE]


def test_the_tenant_comes_from_the_token_never_from_the_text(svc: FeedbackService) -> None:
    """B4: Original-Recipient, From and To all name fitclub; only the token counts."""
    raw = dsn(return_path("bigretail"), "x@fitclub.example").replace(
        b"From: news@bigretail.example", b"From: news@fitclub.example").replace(
        b"Final-Recipient:", b"Original-Recipient: rfc822; ceo@fitclub.example\r\n"
        b"Final-Recipient:")
    assessment, _ = svc.process(raw, source="test")
    assert {e.tenant for e in assessment.events} == {"bigretail"}
    # and without a token the same text attributes nothing
    no_token = raw.replace(return_path("bigretail").encode(), b"news@fitclub.example")
    assessment, stored = svc.process(no_token, source="test")
    assert assessment.status == "untrusted" and assessment.reason == "no valid VERP token"
    assert assessment.tenant is None and stored.events_added == 0
    assert all(r.tenant is None for r in assessment.rows)


def test_the_envelope_recipient_token_wins(svc: FeedbackService) -> None:
    """Delivered by LMTP to fitclub's return path: the copy inside naming bigretail loses."""
    envelope = return_path("fitclub", "F1", "127.0.0.23")
    assessment, _ = svc.process(dsn(return_path("bigretail")), source="lmtp",
                                envelope_recipients=[envelope])
    assert {(e.tenant, e.ip) for e in assessment.events} == {("fitclub", "127.0.0.23")}


def test_two_different_tokens_inside_attribute_nothing(svc: FeedbackService) -> None:
    raw = dsn(return_path("bigretail")).replace(
        b"Message-ID: <orig-1", b"X-Other: <" + return_path("fitclub", "F9").encode() +
        b">\r\nMessage-ID: <orig-1")
    raw = raw.replace(b"To: " + return_path("bigretail").encode(), b"To: someone@else.example")
    assessment, _ = svc.process(raw, source="test")
    assert assessment.status == "untrusted" and assessment.reason == "conflicting VERP tokens"


def test_a_delay_notice_and_our_own_mta_add_no_event(svc: FeedbackService) -> None:
    delayed = dsn(return_path(), status="4.4.1", action="delayed",
                  diagnostic="421 4.4.1 try later", extra_recipients=("b@gmail.com",))
    assessment, stored = svc.process(delayed, source="test")
    assert assessment.status == "trusted" and stored.events_added == 0
    assert {r.reason for r in assessment.rows} == {"delay notice: no event"}
    ours = dsn(return_path(), reporting_mta="MTA.example.net.")
    assessment, stored = svc.process(ours, source="test")
    assert assessment.status == "trusted" and stored.events_added == 0
    assert "counted from the logs" in assessment.rows[0].reason


def test_a_complaint_from_an_fbl_source_is_a_complaint_event(svc: FeedbackService) -> None:
    assessment, stored = svc.process(arf(return_path()), source="test")
    assert assessment.status == "trusted" and stored.events_added == 1
    [event] = assessment.events
    assert event.kind is EventKind.COMPLAINT and event.tenant == "bigretail"
    assert event.provider == "yahoo" and event.ip == "127.0.0.21"
    assert event.time == pytest.approx(1_779_955_200.0)  # Arrival-Date
    exact = arf(return_path("fitclub", "F2"), sender="Staff <staff@hotmail.com>")
    assert svc.process(exact, source="test")[0].events[0].tenant == "fitclub"


@pytest.mark.parametrize("ftype", ["opt-out", "not-spam", "auth-failure"])
def test_feedback_types_that_are_not_complaints_add_no_event(svc: FeedbackService,
                                                             ftype: str) -> None:
    assessment, stored = svc.process(arf(return_path(), feedback_type=ftype), source="test")
    assert assessment.status == "trusted" and stored.events_added == 0
    assert assessment.rows[0].reason == f"feedback type {ftype}: no event"


def test_the_ip_comes_from_the_decision_log_when_the_token_has_none(
        svc: FeedbackService) -> None:
    svc.engine.store.add_decisions([DecisionRow(
        at=NOW, node="n1", instance="i1", tenant="bigretail", recipient="ann@gmail.com",
        action="FILTER smtp-127-0-0-21:", ip="127.0.0.21", pool="dedicated:bigretail",
        rule="dedicated", snapshot_version=1, queue_id="4XyzQ1")])
    assessment, _ = svc.process(dsn(return_path(ref="4XyzQ1", ip=None)), source="test")
    assert [e.ip for e in assessment.events] == ["127.0.0.21"]
    other, _ = svc.process(dsn(return_path(ref="NOSUCHQ", ip=None)), source="test")
    assert [e.ip for e in other.events] == [None]


def test_one_token_counts_for_a_bounded_number_of_recipients(svc: FeedbackService) -> None:
    """A recipient replaying a genuine token with made-up recipients: max 5 in this config."""
    rp = return_path(ref="R1")
    results = [svc.process(dsn(rp, f"user{i}@gmail.com"), source="test") for i in range(8)]
    assert [a.status for a, _ in results] == ["trusted"] * 5 + ["untrusted"] * 3
    assert "replayed?" in results[-1][0].reason
    assert sum(s.events_added for _, s in results) == 5
    # a counted recipient stays counted (a redelivery is trusted, and adds nothing)
    again, stored = svc.process(dsn(rp, "user0@gmail.com"), source="test")
    assert again.status == "trusted" and stored.events_added == 0
    # a fresh service (a restart) reads the count back from the store
    fresh = FeedbackService(svc.engine, svc.settings, clock=lambda: NOW)
    assert fresh.process(dsn(rp, "user9@gmail.com"), source="test")[0].status == "untrusted"


def test_untrusted_feedback_is_alerted_in_the_log_rate_limited(
        svc: FeedbackService, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="poolwarden.feedback"):
        for _ in range(5):
            svc.process(dsn("forged@bounces.example.net"), source="test")
    warnings = [r for r in caplog.records if "untrusted feedback" in r.getMessage()]
    assert len(warnings) == 1  # one at once, then at most one a minute
    assert svc.counts["untrusted"] == 5


@pytest.mark.parametrize(("value", "expected"), [
    ("staff@hotmail.com", "staff@hotmail.com"),
    ("Staff <Staff@Hotmail.COM.>", "staff@hotmail.com"),
    ('"staff@hotmail.com" <x@evil.example>', "x@evil.example"),  # CVE-2023-27043
    ("staff@hotmail.com<x@evil.example>", "x@evil.example"),
    ("a@evil.example@hotmail.com", None),  # CVE-2019-16056
    ("<@route.example:staff@hotmail.com>", None),
    ("x@evil.example, staff@hotmail.com", None),
    ("<a@b.example> <c@d.example>", None),
    ("", None),
    ("staff@hotmail.com (staff)", None),
])
def test_mailbox_takes_one_plain_address_or_nothing(value: str, expected: str | None) -> None:
    assert mailbox(value) == expected


# -- B4: MIME torture through the service ---------------------------------------------------

GOOD = dsn(return_path(ref="GOOD"), "good@gmail.com", message_id="<good@x>")


def _nested(depth: int) -> bytes:
    head = tail = b""
    for i in range(depth):
        head += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        tail = (b"\r\n--b%d--\r\n" % i) + tail
    return b"From: MAILER-DAEMON@x.example\r\n" + head + b"Content-Type: text/plain\r\n\r\nx" + tail


def torture() -> dict[str, bytes]:
    rp = return_path(ref="T1").encode()
    base = dsn(return_path(ref="T1"))
    ds_part = base.split(b"--B\r\nContent-Type: message/delivery-status")[1].split(b"\r\n--B")[0]
    return {
        "no delivery-status part": (
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
            b"From: MAILER-DAEMON@x.example\r\nTo: " + rp + b"\r\n\r\n--B\r\n"
            b"Content-Type: text/plain\r\n\r\nCould not be delivered.\r\n--B--\r\n"),
        "two delivery-status parts": base.replace(
            b"--B--", b"--B\r\nContent-Type: message/delivery-status" + ds_part + b"\r\n--B--"),
        "unknown charset": base.replace(b"Content-Type: text/plain",
                                        b"Content-Type: text/plain; charset=x-unknown"),
        "broken base64": (b"From: MAILER-DAEMON@x.example\r\nTo: " + rp + b"\r\n"
                          b"Subject: Undeliverable\r\nContent-Type: text/plain\r\n"
                          b"Content-Transfer-Encoding: base64\r\n\r\n"
                          b"VGhpcyBpcyBub3Q=!!!***garbage===\r\nAAAA\r\n"),
        "rfc2047 junk": (b"From: =?utf-8?b?!!!not-base64?= <MAILER-DAEMON@x.example>\r\n"
                         b"Subject: =?x-unknown?q?=FF=FE?= =?utf-8?q?Undeliverable?= =?=?=\r\n"
                         b"To: =?utf-8?b?" + base64.b64encode(b"\xff\xfe") + b"?= <" + rp +
                         b">\r\n\r\n<x@y.example>: 550 5.1.1 user unknown\r\n"),
        "1 MB header line": b"Subject: " + b"A" * (1024 * 1024) + b"\r\n\r\nbody\r\n",
        "10,000 headers": b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\nb\r\n",
        "nesting depth 100": _nested(100),
        "50 MB message": b"Subject: big\r\n\r\n" + b"x" * (50 * 1024 * 1024),
        "CVE-2023-27043 recipient": base.replace(
            b"Final-Recipient: rfc822; ann@gmail.com",
            b'Final-Recipient: rfc822; "ann@gmail.com" <bob@evil.example>'),
        "CVE-2019-16056 recipient": base.replace(
            b"Final-Recipient: rfc822; ann@gmail.com",
            b"Final-Recipient: rfc822; a@malicious.example@important.example"),
        "quadratic header": (b"From: " + b"(" * 30_000 + b"=?utf-8?q?x?=" * 2_000 +
                             b"\r\nSubject: " + b"=?utf-8?q?a?= " * 4_000 + b"\r\n\r\nx\r\n"),
        "empty": b"",
        "binary junk": bytes(range(256)) * 64,
    }


REJECTED_AT_CAPS = {"1 MB header line", "10,000 headers", "nesting depth 100", "50 MB message"}


@pytest.mark.parametrize("name", list(torture()))
def test_each_torture_message_is_quick_typed_and_the_next_one_still_counts(
        svc: FeedbackService, name: str) -> None:
    raw = torture()[name]
    started = time.perf_counter()
    assessment = svc.assess(raw, source=name)
    assert time.perf_counter() - started < 2.0
    assert isinstance(assessment, Assessment) and assessment.status in STATUSES
    assert assessment.rows, "every message leaves a row"
    if name in REJECTED_AT_CAPS:
        assert assessment.status == "rejected"
        assert assessment.reason.startswith("rejected: ")
    for event in assessment.events:  # whatever the text says, only the token's tenant
        assert (event.tenant, event.ip) == ("bigretail", "127.0.0.21")
        assert "@" not in (event.recipient_domain or "")
    for row in assessment.rows:
        assert (row.recipient or "").count("@") <= 1
    svc.store([assessment])
    good, stored = svc.process(GOOD, source="next")
    assert good.status == "trusted" and stored.events_added == 1


def test_an_internal_error_on_one_message_is_a_rejected_row_not_a_crash(
        svc: FeedbackService, monkeypatch: pytest.MonkeyPatch) -> None:
    real = dsn_module.parse

    def flaky(raw: bytes) -> dsn_module.ParsedFeedback:
        if b"boom" in raw:
            raise RuntimeError("parser bug")
        return real(raw)

    monkeypatch.setattr(feedback_module.dsn, "parse", flaky)
    bad = svc.assess(b"Subject: boom\r\n\r\nboom\r\n", source="bad")
    assert bad.status == "rejected" and bad.reason == "rejected: internal error (RuntimeError)"
    assert svc.process(GOOD, source="next")[0].status == "trusted"


def test_a_maildir_of_torture_between_good_messages(svc: FeedbackService, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, (name, raw) in enumerate(torture().items()):
        (maildir / "new" / f"{i:02d}a-{name.replace(' ', '_')}").write_bytes(raw)
        (maildir / "cur" / f"{i:02d}b-good").write_bytes(
            dsn(return_path(ref=f"G{i}"), f"good{i}@gmail.com"))
    (maildir / "tmp" / "partial").write_bytes(b"half a messa")
    summary = ingest_files(svc, feedback_module.mail_files(maildir))
    assert isinstance(summary, MailIngestSummary)
    n = len(torture())
    assert summary.messages == 2 * n
    assert summary.rejected >= len(REJECTED_AT_CAPS)
    assert summary.trusted + summary.untrusted + summary.rejected == 2 * n
    good_rows = [r for r in svc.engine.store.feedback(limit=1000)
                 if r.recipient and r.recipient.startswith("good") and r.trusted]
    assert len(good_rows) == n  # every good message after a bad one was counted
    assert summary.events_added >= n


# -- the real corpus ------------------------------------------------------------------------

needs_corpus = pytest.mark.skipif(not (CORPUS / "bounces").is_dir(),
                                  reason=f"corpus not found at {CORPUS} (../shared/corpus)")


@needs_corpus
def test_corpus_bounces_without_a_token_are_all_untrusted(svc: FeedbackService) -> None:
    for path in sorted((CORPUS / "bounces").glob("*.eml")):
        started = time.perf_counter()
        assessment = svc.assess(path.read_bytes(), source=path.name)
        assert time.perf_counter() - started < 2.0, path.name
        assert assessment.status in ("untrusted", "rejected"), path.name
        assert not assessment.events, path.name


@needs_corpus
def test_corpus_bounces_delivered_to_our_return_path_count_for_its_tenant(
        svc: FeedbackService) -> None:
    envelope = return_path("travelhub", "TH1", "127.0.0.22")
    settings = replace(svc.settings, max_events_per_message=10_000)
    svc = FeedbackService(svc.engine, settings, clock=lambda: NOW)
    bounces = 0
    for path in sorted((CORPUS / "bounces").glob("*.eml")):
        raw = path.read_bytes()
        parsed = dsn_module.parse(raw)
        assessment = svc.assess(raw, source=path.name, envelope_recipients=[envelope])
        assert assessment.status == "trusted", (path.name, assessment.reason)
        for event in assessment.events:
            assert (event.tenant, event.ip) == ("travelhub", "127.0.0.22"), path.name
            assert event.kind in (EventKind.HARD_BOUNCE, EventKind.SOFT_BOUNCE)
        if parsed.kind == "bounce":
            bounces += 1
            assert len(assessment.rows) == len(parsed.recipients), path.name
    assert bounces > 250


@needs_corpus
def test_corpus_complaints_need_an_fbl_source(svc: FeedbackService) -> None:
    envelope = return_path("travelhub", "TH2", "127.0.0.22")
    complaints = 0
    for path in sorted((CORPUS / "arf").glob("*.eml")):
        raw = path.read_bytes()
        if dsn_module.parse(raw).kind != "complaint":
            continue
        complaints += 1
        untrusted = svc.assess(raw, source=path.name, envelope_recipients=[envelope])
        assert untrusted.status == "untrusted" and not untrusted.events, path.name
        sender = mailbox(feedback_module._header(feedback_module._headers(raw), "From"))
        assert sender is not None, path.name
        allowed = FeedbackService(svc.engine, replace(svc.settings, fbl_sources=(sender,)),
                                  clock=lambda: NOW)
        trusted = allowed.assess(raw, source=path.name, envelope_sender="",
                                 envelope_recipients=[envelope])
        assert trusted.status == "trusted", (path.name, trusted.reason)
        assert all(e.tenant == "travelhub" for e in trusted.events)
    assert complaints >= 15
