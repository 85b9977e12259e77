"""Complaint (feedback-loop) reports: RFC 5965 ARF and the common non-ARF forms.

Pure: a parsed message in, ``Complaint`` values out; no I/O. Understands

* RFC 5965 ``message/feedback-report`` parts (Feedback-Type, User-Agent,
  Original-Rcpt-To / Removal-Recipient, Original-Mail-From, Source-IP,
  Arrival-Date / Received-Date, Reported-Domain) - one complaint per
  Original-Rcpt-To, or one for the returned message's To: when none is given;
* Microsoft JMRP / Outlook.com forwards: a ``message/rfc822`` carrying
  ``X-HmXmrOriginalRecipient``, or "complaint about message from" mail from
  staff@hotmail.com;
* Amazon SES complaint notifications (JSON, also wrapped in an SNS envelope);
* Apple's plain unsubscribe mail (``X-Apple-Unsubscribe: true``) -> opt-out.

``wire.dsn.parse`` applies the size/depth caps and calls ``find_complaints``;
``parse_complaints(raw)`` is the same entry point for bytes. A complaint names
addresses from untrusted text: attribute it to a tenant only through our own
VERP token, and trust it only from a configured FBL source (docs/testing.md B5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from poolwarden.wire.dsn_fields import ses_json

__all__ = ["FEEDBACK_TYPES", "Complaint", "find_complaints", "parse_complaints"]

# RFC 5965 section 7.3 registry, plus "not-spam" (RFC 6650 usage) and our "other".
FEEDBACK_TYPES = ("abuse", "opt-out", "auth-failure", "fraud", "virus", "not-spam", "other")
_TYPE_ALIASES = {
    "abuse": "abuse", "spam": "abuse", "complaint": "abuse", "opt-out": "opt-out",
    "optout": "opt-out", "unsubscribe": "opt-out", "auth-failure": "auth-failure",
    "authfailure": "auth-failure", "dkim": "auth-failure", "fraud": "fraud", "virus": "virus",
    "not-spam": "not-spam", "notspam": "not-spam", "other": "other",
}


@dataclass(frozen=True, slots=True)
class Complaint:
    feedback_type: str  # one of FEEDBACK_TYPES
    recipient: str  # the complaining address, as reported (untrusted)
    original_mail_from: str | None = None
    original_message_id: str | None = None
    source_ip: str | None = None
    arrival_date: str | None = None
    reported_domains: tuple[str, ...] = ()
    user_agent: str | None = None
    format: str = "arf"  # arf | jmrp | ses | apple-unsubscribe
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def normalise_type(value: str) -> str:
    key = value.strip().lower().split(";")[0].strip()
    return _TYPE_ALIASES.get(key, "other" if key else "abuse")


_ADDR_RE = re.compile(r"[A-Za-z0-9._%+=/'&!#$^*{}|~-]+@[A-Za-z0-9.-]+[A-Za-z0-9]")


def _addr(value: str) -> str:
    m = _ADDR_RE.search(value or "")
    return m.group(0) if m else ""


def _h(msg: Message, name: str) -> str:
    value = msg.get(name)
    return " ".join(str(value).split())[:2048] if value is not None else ""


def _report_fields(text: str) -> tuple[dict[str, str], list[str], list[str]]:
    """(single-valued fields, Original-Rcpt-To/Removal-Recipient list, Reported-Domain list)."""
    single: dict[str, str] = {}
    rcpts: list[str] = []
    domains: list[str] = []
    last = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last:
            single[last] = (single.get(last, "") + " " + line.strip()).strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        last = ""
        if key in ("original-rcpt-to", "removal-recipient"):
            addr = _addr(value)
            if addr and (not rcpts or rcpts[-1] != addr):
                rcpts.append(addr)
        elif key == "reported-domain":
            domains.append(value)
        elif key not in single:
            single[key] = value
            last = key
    return single, rcpts, domains


def _from_arf(report: str, originals: list[Message]) -> list[Complaint]:
    fields, rcpts, domains = _report_fields(report)
    orig = originals[0] if originals else None
    mid = _h(orig, "Message-ID") or None if orig is not None else None
    mail_from = _addr(fields.get("original-mail-from", "")) or (
        _addr(_h(orig, "Return-Path")) or _addr(_h(orig, "From")) if orig is not None else ""
    )
    if not rcpts:
        to = _addr(_h(orig, "To")) if orig is not None else ""
        rcpts = [to]
    ftype = normalise_type(fields.get("feedback-type", ""))
    common: dict[str, Any] = {
        "original_mail_from": mail_from or None,
        "original_message_id": mid,
        "source_ip": (fields.get("source-ip") or "").split(" ")[0] or None,
        "arrival_date": fields.get("arrival-date") or fields.get("received-date") or None,
        "reported_domains": tuple(domains),
        "user_agent": fields.get("user-agent") or None,
    }
    return [Complaint(ftype, r, format="arf", **common) for r in rcpts]


def _from_jmrp(msg: Message, originals: list[Message]) -> list[Complaint]:
    subject = _h(msg, "Subject").lower()
    sender = _h(msg, "From").lower()
    for orig in originals:
        rcpt = _h(orig, "X-HmXmrOriginalRecipient")
        if rcpt or ("complaint about message from" in subject and (
            "hotmail.com" in sender or "email-abuse.amazonses.com" in sender)):
            return [Complaint(
                "abuse", _addr(rcpt) or _addr(_h(orig, "To")),
                original_mail_from=_addr(_h(orig, "Return-Path")) or _addr(_h(orig, "From"))
                or None,
                original_message_id=_h(orig, "Message-ID") or None,
                source_ip=_h(orig, "X-Reporter-IP") or None,
                format="jmrp",
            )]
    return []


def _from_ses(texts: list[str]) -> list[Complaint]:
    for text in texts:
        if "Complaint" not in text:
            continue
        data = ses_json(text)
        if data is None:
            continue
        kind = data.get("notificationType") or data.get("eventType")
        body = data.get("complaint")
        if kind != "Complaint" or not isinstance(body, dict):
            continue
        mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
        assert isinstance(mail, dict)
        ftype = normalise_type(str(body.get("complaintFeedbackType") or "abuse"))
        out = []
        for r in body.get("complainedRecipients") or []:
            if isinstance(r, dict):
                out.append(Complaint(
                    ftype, _addr(str(r.get("emailAddress", ""))),
                    original_mail_from=_addr(str(mail.get("source", ""))) or None,
                    original_message_id=str(mail.get("messageId") or "") or None,
                    arrival_date=str(body.get("arrivalDate") or body.get("timestamp") or "")
                    or None,
                    user_agent=str(body.get("userAgent") or "") or None,
                    format="ses",
                ))
        if out:
            return out
    return []


def find_complaints(
    msg: Message, feedback: list[str], originals: list[Message], texts: list[str]
) -> list[Complaint]:
    """Complaints carried by an already parsed (and capped) message; [] when none."""
    if feedback:
        return _from_arf(feedback[0], originals)
    jmrp = _from_jmrp(msg, originals)
    if jmrp:
        return jmrp
    ses = _from_ses(texts)
    if ses:
        return ses
    if _h(msg, "X-Apple-Unsubscribe").lower() == "true":
        sender = _addr(_h(msg, "From"))
        if sender:
            return [Complaint("opt-out", sender, format="apple-unsubscribe")]
    return []


def parse_complaints(raw: bytes) -> list[Complaint]:
    """Complaints in a raw message, under ``wire.dsn``'s caps; [] for anything else."""
    from poolwarden.wire import dsn  # imported here: dsn imports this module

    return dsn.parse(raw).complaints
