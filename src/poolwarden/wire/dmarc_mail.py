"""Which reports an input holds: a report file itself, or a mail with reports attached.

``poolwarden ingest dmarc`` and the feedback LMTP listener hand over bytes; this module
says what they are, by content, never by file name alone:

* a report file (XML, gzip, zip): one aggregate report;
* a JSON SMTP TLS report (RFC 8460): recognised as ``smtp_tls``, not an aggregate report;
* a mail (after ``wire.dsn``'s caps: size, header count and length, MIME parts and depth):
  each attachment that is XML, gzip or zip is an aggregate report; a TLS report
  (``report-type=tlsrpt``) or a DMARC failure report (RFC 6591 ``auth-failure``, or a
  forensic report as text) is recognised as such; a mail with nothing of the sort (Yahoo's
  body of just ``unused``) is refused with that reason.

Sans-io; attachment names are kept for messages only, never used as paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message

from poolwarden.wire import dsn
from poolwarden.wire.dmarc_archive import ReportRejected, kind_of

AGGREGATE = "aggregate"
FAILURE = "failure"
SMTP_TLS = "smtp_tls"

_REPORT_TYPES = {"application/gzip", "application/x-gzip", "application/zip",
                 "application/x-zip-compressed", "application/x-zip", "application/xml",
                 "text/xml", "application/octet-stream"}
_FAILURE_SUBJECT = re.compile(r"dmarc (failure|forensic) report", re.I)


@dataclass(frozen=True, slots=True)
class Part:
    """One report found in an input: its kind, a name to show and its (still packed) bytes."""

    kind: str
    name: str
    data: bytes


def looks_like_mail(data: bytes) -> bool:
    head = data[:4096]
    if head.startswith(b"From "):
        return True
    return kind_of(data) == "unknown" and bool(
        re.search(rb"^(received|from|content-type|mime-version|subject|return-path)[ \t]*:",
                  head, re.I | re.M))


def parts_of(data: bytes, *, name: str = "") -> list[Part]:
    """The reports in ``data``; ``ReportRejected`` when there is none to read."""
    kind = kind_of(data)
    if kind in ("gzip", "zip", "xml"):
        return [Part(AGGREGATE, name, data)]
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return [Part(_json_kind(stripped), name, data)]
    if not data.strip():
        raise ReportRejected("empty report")
    if not looks_like_mail(data):
        raise ReportRejected("not a DMARC report: neither XML, gzip, zip, JSON nor mail")
    try:
        msg = dsn.load_message(data)
    except dsn.Rejected as exc:
        raise ReportRejected(f"mail refused: {exc}") from None
    except Exception as exc:  # the email package on hostile input: a reason, not a crash
        raise ReportRejected(f"unreadable mail: {type(exc).__name__}") from None
    return _from_mail(msg, name)


def _json_kind(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ReportRejected(f"not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "policies" in doc and "organization-name" in doc:
        return SMTP_TLS
    raise ReportRejected("JSON that is not an SMTP TLS report")


def _from_mail(msg: Message, name: str) -> list[Part]:
    found: list[Part] = []
    report_type = (msg.get_param("report-type", header="content-type") or "")
    subject = dsn.header(msg, "subject")
    failure = False
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            failure = True
            continue
        if part.is_multipart() or ctype.startswith("message/"):
            continue
        filename = part.get_filename() or ""
        if ctype.startswith("application/tlsrpt") or str(report_type).lower() == "tlsrpt":
            if ctype != "text/plain":
                found.append(Part(SMTP_TLS, filename or name, b""))
            continue
        if ctype not in _REPORT_TYPES and not filename.lower().endswith(
                (".xml", ".gz", ".zip")):
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # broken base64 and the like: that part is unreadable
            payload = None
        if not isinstance(payload, bytes) or not payload.strip():
            continue
        if kind_of(payload) in ("gzip", "zip", "xml"):
            found.append(Part(AGGREGATE, filename or name, payload))
    if found:
        return found
    if failure or _FAILURE_SUBJECT.search(subject) or _forensic_text(msg):
        return [Part(FAILURE, name, b"")]
    raise ReportRejected("no DMARC report attached to the mail")


def _forensic_text(msg: Message) -> bool:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            text = dsn.part_text(part)
            if "failed the published DMARC policy" in text or "DMARC Results:" in text:
                return True
    return False
