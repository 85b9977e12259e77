"""Bounce / DSN parsing: one feedback message (bytes) -> ``ParsedFeedback``.

Its one job is the top level: apply the caps, load and walk the MIME message,
decide what kind of feedback it is and dispatch to the reader for its format,
then classify each failed recipient (``wire.bounce_classify``). Pure: bytes in,
values out; no files, sockets or clock. The format readers live beside it:
RFC 3464 ``multipart/report; report-type=delivery-status`` fields in
``wire.dsn_fields``; the common non-standard bounce texts (Exim, qmail,
Sendmail, Postfix without DSN, Gmail, Yahoo, Domino, DragonFly, Exchange/Office
365, Amazon SES JSON notifications...) in ``wire.bounce_text``. It recognises
RFC 3834 auto-replies and success DSNs itself; complaints (ARF, JMRP, SES
complaint JSON, Apple unsubscribe) are handed to ``wire.arf``. It never holds
classification rules (``wire.bounce_rules``) or format-specific scraping.

Untrusted input (docs/testing.md A5/B4): size, header count, header line length,
number of MIME parts and MIME depth are capped *before* the email package sees
the bytes; headers are parsed with ``policy.compat32`` (plain strings, none of
the modern header parser's quadratic paths). Any exception inside becomes kind
"other" with a problem noted: ``parse`` never raises. Addresses found here are
display data only: never authorise or attribute anything on them (B4/B5).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser

from poolwarden.wire import arf
from poolwarden.wire.bounce_classify import classify, find_command, find_reply_code, find_status
from poolwarden.wire.bounce_text import (
    complete_reply,
    exim_alias,
    flatten,
    from_ses,
    from_text,
    has_signal,
    remote_from_text,
    report_body,
    text_for,
)
from poolwarden.wire.dsn_fields import Candidate, clean_address, from_dsn

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_HEADERS",
    "MAX_HEADER_LINE",
    "MAX_PARTS",
    "FailedRecipient",
    "ParsedFeedback",
    "load_message",
    "parse",
]

MAX_BYTES = 10 * 1024 * 1024  # RFC 7489 7.2.1.1: "a commonly observed receiver limit"
MAX_HEADERS = 1000  # header fields in the top-level header block
MAX_HEADER_LINE = 64 * 1024  # one (folded) header line, in bytes
MAX_PARTS = 500  # MIME parts (Content-Type fields) in the whole message
MAX_DEPTH = 20  # multipart / message nesting
MAX_TEXT = 256 * 1024  # report text kept for matching

KINDS = ("bounce", "complaint", "delivered", "autoreply", "other")


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    address: str
    reason: str
    bounce_class: str
    dsn_status: str
    hard: bool
    reply_code: str
    diagnostic: str
    remote_mta: str
    rule_id: str = ""
    provider_code: str = ""  # the provider's own code in the reply (TSS04, S3150, OFR_416...)
    about: str = ""  # ip | domain | content | recipient | sender | rate | system


@dataclass(slots=True)
class ParsedFeedback:
    kind: str  # bounce | complaint | delivered | autoreply | other
    recipients: list[FailedRecipient] = field(default_factory=list)
    feedback_type: str | None = None
    original_message_id: str | None = None
    original_return_path: str | None = None
    problems: list[str] = field(default_factory=list)
    complaints: list[arf.Complaint] = field(default_factory=list)


class Rejected(Exception):  # noqa: N818 - a verdict, not a bug
    """The message breaks a cap; ``str(exc)`` names which."""


# --------------------------------------------------------------------------------------------
# Caps and loading

_HEADER_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:", re.M)
_CT_FIELD = re.compile(rb"^content-type[ \t]*:", re.M | re.I)


def _precheck(raw: bytes) -> None:
    if len(raw) > MAX_BYTES:
        raise Rejected(f"too large ({len(raw)} bytes > {MAX_BYTES})")
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\r\n\r\n")
    if end < 0 or (0 <= end2 < end):
        end = end2
    head = raw if end < 0 else raw[:end]
    count = 0
    start = 0
    n = len(head)
    while start < n:
        nl = head.find(b"\n", start)
        stop = n if nl < 0 else nl
        if stop - start > MAX_HEADER_LINE:
            raise Rejected(f"header line too long (> {MAX_HEADER_LINE} bytes)")
        if start < stop and head[start] not in b" \t":
            count += 1
            if count > MAX_HEADERS:
                raise Rejected(f"too many header fields (> {MAX_HEADERS})")
        start = stop + 1
    if len(_CT_FIELD.findall(raw)) > MAX_PARTS:
        raise Rejected(f"too many MIME parts (> {MAX_PARTS})")


def _check_depth(msg: Message) -> None:
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Rejected(f"MIME nesting too deep (> {MAX_DEPTH})")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in payload if isinstance(p, Message))


def load_message(raw: bytes) -> Message:
    """Apply the caps, then parse with compat32. Raises ``Rejected`` (or the parser's error)."""
    _precheck(raw)
    if raw.startswith(b"From ") and b"\n" in raw[:1000]:
        raw = raw[raw.index(b"\n") + 1 :]  # mbox separator line
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    _check_depth(msg)
    return msg


def header(msg: Message, name: str) -> str:
    """A header as text: RFC 2047 decoded when possible, never raises, one line."""
    value = msg.get(name)
    if value is None:
        return ""
    text = str(value)
    with contextlib.suppress(Exception):  # junk encoded-words: keep the raw text
        text = str(make_header(decode_header(text)))
    return " ".join(text.split())[:4096]


def part_text(part: Message) -> str:
    """Decoded text of a leaf part; unknown charsets fall back to UTF-8 with replacement."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except (LookupError, ValueError):
        text = payload.decode("utf-8", errors="replace")
    if part.get_content_subtype() == "html":
        text = _html_to_text(text)
    return text


_TAG = re.compile(r"<(?:br|/p|/div|/tr|p|div|tr)\b[^>]*>", re.I)
_ANY_TAG = re.compile(r"<[^>]{0,2000}>")


def _html_to_text(html: str) -> str:
    import html as htmllib

    text = _TAG.sub("\n", html)
    text = _ANY_TAG.sub("", text)
    return htmllib.unescape(text)


# --------------------------------------------------------------------------------------------
# Walking the message


@dataclass(slots=True)
class _Walk:
    texts: list[str] = field(default_factory=list)  # human-readable report parts
    dsn: list[str] = field(default_factory=list)  # message/delivery-status bodies
    feedback: list[str] = field(default_factory=list)  # message/feedback-report bodies
    originals: list[Message] = field(default_factory=list)  # message/rfc822, rfc822-headers
    content_types: list[str] = field(default_factory=list)


def _fields_text(part: Message) -> str:
    """Body of a message/delivery-status-like part as 'Name: value' text blocks."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                lines = [f"{k}: {' '.join(str(v).split())}" for k, v in block.items()]
                body = block.get_payload()
                if isinstance(body, str) and body.strip():
                    lines.append(body)
                blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
    return part_text(part)


def _walk(msg: Message) -> _Walk:
    out = _Walk()

    def visit(part: Message, depth: int) -> None:
        ctype = part.get_content_type()
        out.content_types.append(ctype)
        if ctype in ("message/rfc822", "message/global", "message/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                out.originals.append(inner[0])
            return
        if ctype in ("text/rfc822-headers", "text/rfc822-header"):
            out.originals.append(HeaderParser(policy=policy.compat32).parsestr(part_text(part)))
            return
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            out.dsn.append(_fields_text(part))
            return
        if ctype == "message/feedback-report":
            out.feedback.append(_fields_text(part))
            return
        payload = part.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message) and depth < MAX_DEPTH:
                    visit(sub, depth + 1)
            return
        if part.get_content_maintype() in ("text", "multipart") or ctype == "application/json" \
                or depth == 0:
            text = part_text(part)
            if text:
                out.texts.append(text[:MAX_TEXT])

    visit(msg, 0)
    return out


# --------------------------------------------------------------------------------------------
# Auto-replies (RFC 3834) and bounce-looking messages

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ _-]?(?:reply|response|antwort|matische antwort)|autoreply|"
    r"out of (?:the )?office|away from|away until|on vacation|vacation|abwesenheit|"
    r"r[ée]ponse automatique|absence|i am away|i'?m away)",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|notification|report|problem)|"
    r"returned mail|failure notice|mail delivery|non[- ]?delivery|could not (?:be )?deliver|"
    r"delivery has failed|not delivered|mail system error|returned to sender|rejected|"
    r"nondeliverable|bounce|warning: could not|message (?:status|delayed)|delivery delay|"
    r"unzustellbar|no se puede entregar|failure notice|mail failure|error\(s\) in forwarding",
    re.I,
)
_DAEMON_FROM = re.compile(
    r"mailer-daemon|postmaster|mail delivery|mail-daemon|maildelivery|mail administrator|"
    r"no-?reply@.*(?:ses|amazonaws)|bounce|daemon@|mailer@|notify|administrator",
    re.I,
)


_FAILURE_TEXT = re.compile(
    r"(?:could not be delivered|undeliverable|delivery (?:has )?failed|failed to deliver"
    r"|(?:user|address|mailbox|recipient) (?:unknown|not found|does not exist)"
    r"|mailbox (?:is )?(?:full|unavailable)|over quota|permanent(?:ly)? (?:error|failure)"
    r"|no such (?:user|mailbox|recipient)|invalid (?:user|recipient) address"
    r"|\b[45]\.\d{1,3}\.\d{1,3}\b)",
    re.I,
)


def _looks_autoreply(msg: Message) -> bool:
    auto = header(msg, "Auto-Submitted").lower()
    subject = header(msg, "Subject")
    if header(msg, "X-Autoreply") or header(msg, "X-Autorespond") or header(
        msg, "X-Mail-Autoreply"
    ):
        return True
    if header(msg, "Precedence").lower() == "auto_reply":
        return True
    if auto.startswith("auto-replied") and not _DAEMON_FROM.search(header(msg, "From")):
        return True
    return bool(_AUTO_SUBJECT.search(subject))


def _looks_bounce(msg: Message, walk: _Walk) -> bool:
    ctype = msg.get_content_type()
    report_type = str(msg.get_param("report-type") or "").lower()
    if ctype == "multipart/report" and "delivery-status" in report_type:
        return True
    if walk.dsn:
        return True
    subject = header(msg, "Subject")
    sender = header(msg, "From") + " " + header(msg, "Return-Path") + " " + header(msg, "Sender")
    if _BOUNCE_SUBJECT.search(subject) or _DAEMON_FROM.search(sender):
        return True
    if msg.get("Return-Path") is not None:
        return header(msg, "Return-Path").strip() == "<>"
    # no envelope at all (a message saved to a file): a bounce only if its text reads like one
    return bool(_FAILURE_TEXT.search(" ".join(" ".join(walk.texts)[:8000].split())))


# --------------------------------------------------------------------------------------------
# Putting it together


def _is_report(msg: Message) -> bool:
    return msg.get_content_type() == "multipart/report" or bool(
        _DAEMON_FROM.search(header(msg, "From")))


def _original_ids(walk: _Walk, inline: str) -> tuple[str | None, str | None, str]:
    """(Message-ID, Return-Path or From, To) of the returned message, when present."""
    orig: Message | None = walk.originals[0] if walk.originals else None
    if orig is None and inline:
        start = inline.find("\n")
        text = inline[start + 1 :] if not inline.lower().startswith("return-path") else inline
        try:
            orig = HeaderParser(policy=policy.compat32).parsestr(text.lstrip("\n")[:200000])
        except Exception:
            orig = None
    if orig is None:
        return None, None, ""
    mid = header(orig, "Message-ID") or None
    ret = clean_address(header(orig, "Return-Path")) or clean_address(header(orig, "From"))
    return mid, ret or None, header(orig, "To")


def _finish(cands: list[Candidate], reporting: str, report: str) -> list[FailedRecipient]:
    out: list[FailedRecipient] = []
    blocks: dict[str, str] = {}
    if report and any(not c.diagnostic or c.dtype for c in cands):
        blocks = {t.address.lower(): t.diagnostic for t in from_text(report, set())}
    for c in cands:
        diag = c.diagnostic.strip()
        block = blocks.get(c.address.lower(), "")
        if not diag or not has_signal(diag):
            block = block or text_for(report, c.address)
            diag = (diag + "\n" + block).strip() if block else diag
        elif block and len(block) > len(diag):
            # the human-readable part often carries the whole reply the DSN field truncates
            flat_diag = flatten(diag)
            for para in re.split(r"\n\s*\n", block):
                flat = flatten(para)
                if flat_diag in flat and len(flat) > len(flat_diag):
                    diag = para
                    break
        diag = complete_reply(diag, report)
        remote = c.remote_mta or remote_from_text(diag)
        domain = c.address.rpartition("@")[2]
        result = classify(
            c.reply or None, c.status or None, diag,
            reporting_mta=reporting or None,
            remote_mta=(remote + " " + domain).strip() or None,
            command=c.command or find_command(diag) or find_command(text_for(report, c.address))
            or None,
            action=c.action or None,
            diagnostic_type=c.dtype or None,
            preset=c.preset or None,
        )
        status = c.status or find_status(diag)
        if result.reason == "delivered":
            continue
        out.append(FailedRecipient(
            address=c.address,
            reason=result.reason,
            bounce_class=result.bounce_class,
            dsn_status=status,
            hard=result.hard,
            reply_code=c.reply or find_reply_code(" ".join(diag.split())),
            diagnostic=" ".join(diag.split())[:2000],
            remote_mta=remote,
            rule_id=result.rule_id,
            provider_code=result.provider_code,
            about=result.about,
        ))
    return out


def _is_delivered(c: Candidate) -> bool:
    return c.action in ("delivered", "relayed", "expanded") or c.status.startswith("2.")


def parse(raw: bytes) -> ParsedFeedback:
    """Parse one feedback message. Never raises: failures come back as kind "other"."""
    try:
        msg = load_message(raw)
    except Rejected as exc:
        return ParsedFeedback("other", problems=[f"rejected: {exc}"])
    except RecursionError:
        return ParsedFeedback("other", problems=["rejected: MIME nesting too deep"])
    except Exception as exc:
        return ParsedFeedback("other", problems=[f"rejected: unparseable ({type(exc).__name__})"])
    try:
        return _parse_message(msg)
    except Rejected as exc:
        return ParsedFeedback("other", problems=[f"rejected: {exc}"])
    except RecursionError:
        return ParsedFeedback("other", problems=["rejected: MIME nesting too deep"])
    except Exception as exc:
        return ParsedFeedback("other", problems=[f"rejected: parser error ({type(exc).__name__})"])


def _parse_message(msg: Message, nested: bool = False) -> ParsedFeedback:
    walk = _walk(msg)
    complaints = arf.find_complaints(msg, walk.feedback, walk.originals, walk.texts)
    if complaints:
        first = complaints[0]
        return ParsedFeedback(
            "complaint", feedback_type=first.feedback_type,
            original_message_id=first.original_message_id,
            original_return_path=first.original_mail_from, complaints=complaints,
        )
    report, inline = report_body(walk.texts)
    mid, ret, _to = _original_ids(walk, inline)
    problems: list[str] = []
    if len(walk.dsn) > 1:
        problems.append("more than one delivery-status part")

    ses = from_ses(walk.texts)
    if ses is not None:
        kind, cands = ses
        failed = _finish([c for c in cands if not _is_delivered(c)], "amazonses.com", "")
        if kind == "bounce" and failed:
            return ParsedFeedback("bounce", failed, None, mid, ret, problems)
        return ParsedFeedback("delivered" if kind == "delivered" else "other",
                              [], None, mid, ret, problems)

    cands, reporting = from_dsn(walk.dsn)
    if not cands and any("final-recipient:" in t.lower() for t in walk.texts):
        cands, reporting = from_dsn([report])
    if cands:
        failed_c = [c for c in cands if not _is_delivered(c)]
        if not failed_c:
            return ParsedFeedback("delivered", [], None, mid, ret, problems)
        failed = _finish(failed_c, reporting, report)
        return ParsedFeedback("bounce" if failed else "delivered", failed, None, mid, ret,
                              problems)

    if _looks_autoreply(msg) and not walk.dsn:
        return ParsedFeedback("autoreply", [], None, mid, ret, problems)
    if not _looks_bounce(msg, walk):
        return ParsedFeedback("other", [], None, mid, ret, problems)
    ignore = {a.lower() for a in (
        clean_address(header(msg, "From")), clean_address(header(msg, "To")),
        ret or "", clean_address(header(msg, "Reply-To")),
    ) if a}
    # the envelope sender (the bounce's To, the returned message's Return-Path and From) is
    # never a failed recipient, even when nothing else is found
    senders = {a.lower() for a in (clean_address(header(msg, "To")), ret or "") if a}
    if walk.originals:
        senders.add(clean_address(header(walk.originals[0], "From")).lower())
    text_cands = from_text(report, ignore) or from_text(report, senders - {""})
    if header(msg, "X-YMailISG"):
        # Yahoo's own bounces name the refused recipient in <>; the refusal came at RCPT
        for c in text_cands:
            if not c.command and re.search(r"<[^<>\s]+@[^<>\s]+>", c.diagnostic):
                c.command = find_command(c.diagnostic) or "RCPT"
    failed_hdr = [clean_address(a) for a in header(msg, "X-Failed-Recipients").split(",")]
    failed_hdr = [a for a in failed_hdr if a]
    if failed_hdr and "Google Groups" in report and header(msg, "X-Google-Smtp-Source"):
        # Google Groups' refusal lists four reasons as bullets; the text is localised
        bullets = len(re.findall(r"\n ?\*", report))
        preset = "rejected" if bullets == 4 else "onhold"
        text_cands = [Candidate(a, diagnostic=report, preset=preset) for a in failed_hdr]
    if failed_hdr and not text_cands:
        text_cands = [Candidate(a, diagnostic=report if len(failed_hdr) == 1 else (
            text_for(report, a) or report)) for a in failed_hdr]
    if not text_cands and walk.originals and not nested and _is_report(walk.originals[0]):
        # a bounce returned inside a bounce (e.g. an anti-virus gateway wrapping the DSN)
        result = _parse_message(walk.originals[0], nested=True)
        if result.recipients:
            return result
    if not text_cands:
        alias = exim_alias(report) or clean_address(_to)
        if alias:
            text_cands = [Candidate(alias, diagnostic=report)]
    if not text_cands and inline and not nested:
        # a bounce forwarded inline ("From MAILER-DAEMON ..." then the bounce itself)
        inner_text = re.sub(r"^[^\n]*\n", "", inline, count=1) if not re.match(
            r"[\w-]+:", inline) else inline
        inner = BytesParser(policy=policy.compat32).parsebytes(
            inner_text.encode("utf-8", "replace")[:MAX_BYTES])
        _check_depth(inner)
        result = _parse_message(inner, nested=True)
        if result.recipients:
            return result
    if not text_cands:
        problems.append("no delivery-status part and no recognisable recipient")
        return ParsedFeedback("other", [], None, mid, ret, problems)
    failed = _finish(text_cands, "", report)
    return ParsedFeedback("bounce" if failed else "other", failed, None, mid, ret, problems)
