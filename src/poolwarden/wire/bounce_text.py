"""Bounces without a delivery-status part: scrape failed recipients from the body.

Its one job is the non-standard bounce formats: the plain-text reports MTAs
and providers write instead of (or beside) RFC 3464 fields (Exim, qmail,
Sendmail, Postfix without DSN, Gmail, Yahoo, Domino, DragonFly, Exchange/Office
365...) and Amazon SES bounce notifications (JSON in the body). It finds the
report text, the recipients it names and the diagnostic paragraph for each,
as ``wire.dsn_fields.Candidate`` records. Pure: text in, values out. It never
touches the MIME structure or the size caps (``wire.dsn`` applies those and
hands over decoded, capped text), never classifies, and never does I/O.
Addresses found here are display data only (docs/testing.md B4/B5).
"""

from __future__ import annotations

import re

from poolwarden.wire.bounce_classify import find_reply_code, find_status
from poolwarden.wire.dsn_fields import ADDR, Candidate, clean_address, ses_json, typed

__all__ = [
    "complete_reply",
    "exim_alias",
    "flatten",
    "from_ses",
    "from_text",
    "has_signal",
    "remote_from_text",
    "report_body",
    "text_for",
]


# --------------------------------------------------------------------------------------------
# Plain-text bounces

_ORIGINAL_MARKERS = re.compile(
    r"^\s*(?:"
    r"-+ ?(?:this is a copy of|original message|below this line is a copy|the original message"
    r"|unsent message|returned message|original mail|message headers|the header of the "
    r"original|received message|forwarded message|undelivered message|headers of the "
    r"original)"
    r"|-* ?below this line is a copy of the message"
    r"|message headers follow"
    r"|the (?:original|header of the original) message (?:headers? )?(?:is|are|follows)"
    r"|original message (?:headers? )?follows?"
    r"|-+ ?original message ?-+"
    r"|\*{3,} ?original message"
    r"|content-type: message/rfc822"
    r"|return-path: ?<"
    r")",
    re.I | re.M,
)

_HEAD_LINE = re.compile(
    r"^\s{0,12}(?:(?:<<<|>>>)?\s?[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?)?"
    r"(?:(?P<rcpt>(?:in:\s+)?rcpt to: ?)|to: ?|recipient: ?|failed recipient: ?|address: ?|"
    r"(?!(?:mail from|from|sender|reply-to|return-path|cc|bcc|envelope-from|x-[\w-]+)\s*:)"
    r"[a-z][a-z0-9 ]{2,40}: ?|"
    r"[-*]{0,3} ?)?"
    r"[<\"']?(?P<addr>" + ADDR + r")[>\"']?"
    r"(?:\s*(?:\.{3}|:|\[|\(|-|;|,)\s*(?P<rest>.*)|\s*$|\s+(?P<rest2>.*))$",
    re.I,
)
_SENTENCE = re.compile(
    r"(?:delivering your (?:mail|message) to|could not be delivered to|was not delivered to|"
    r"could not deliver (?:mail |the message )?to|delivery to the following recipients? "
    r"(?:failed|has been delayed)|undeliverable to|failed to deliver to|"
    r"your message to|message for|delivery has failed to these recipients or groups:|"
    r"not be delivered to one or more recipients|to the following address(?:es)?)"
    r"[:\s]*<?(" + ADDR + r")>?",
    re.I,
)


def report_body(texts: list[str]) -> tuple[str, str]:
    """(report text, inline original) split at the first original-message marker."""
    joined = "\n".join(texts)
    m = _ORIGINAL_MARKERS.search(joined)
    if m is None:
        return joined, ""
    return joined[: m.start()], joined[m.start():]


def from_text(report: str, ignore: set[str]) -> list[Candidate]:
    """Recipients a plain-text report names (not those in ``ignore``), with their text."""
    lines = [re.sub(r"^(?:> ?)+", "", line) for line in report.splitlines()]
    heads: list[tuple[int, str, str]] = []  # (line index, address, rest of line)
    at_rcpt: set[str] = set()
    for i, line in enumerate(lines):
        m = _HEAD_LINE.match(line)
        if m:
            addr = m.group("addr")
            if addr.lower() not in ignore:
                heads.append((i, addr, m.group("rest") or m.group("rest2") or ""))
                if m.group("rcpt"):
                    at_rcpt.add(addr.lower())
    if not heads:
        for i, line in enumerate(lines):
            window = line if i + 2 >= len(lines) else " ".join(lines[i : i + 3])
            s = _SENTENCE.search(window)
            if s and s.group(1).lower() not in ignore and s.start() < len(line):
                heads.append((i, s.group(1), ""))
                break
    # Sendmail transcripts: "... while talking to HOST:" then ">>> CMD" / "<<< reply" lines
    # belong to the recipient line(s) that *follow* them, never to the one before.
    talks = [i for i, line in enumerate(lines) if _TALK.match(line)]
    cands: list[Candidate] = []
    seen: dict[str, int] = {}
    for n, (i, addr, rest) in enumerate(heads):
        stop = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        stop = next((t for t in talks if i < t < stop), stop)
        start = heads[n - 1][0] if n else -1
        talk = next((t for t in reversed(talks) if start < t < i), None)
        transcript = lines[talk:i] if talk is not None else []
        body = "\n".join([*transcript, lines[i] if _keep_head(lines[i]) else rest,
                          *lines[i + 1 : stop]])
        body = body.strip()
        key = addr.lower()
        if key in seen:
            prev = cands[seen[key]]
            if body and body not in prev.diagnostic:
                prev.diagnostic = (prev.diagnostic + "\n" + body).strip()
            continue
        seen[key] = len(cands)
        cands.append(Candidate(address=addr, diagnostic=body,
                                command="RCPT" if key in at_rcpt else ""))
    if len(cands) == 1:
        # one recipient: the text before its line (e.g. "Error: ... 550 no such user") counts too
        before = "\n".join(lines[: heads[0][0]]) if heads else ""
        if not has_signal(cands[0].diagnostic):
            before = report
        cands[0].diagnostic = (cands[0].diagnostic + "\n" + before).strip()
    return cands


_TALK = re.compile(r"^\s*(?:\.\.\.\s*)?while talking to ", re.I)
_GENERATED = re.compile(r"(?:generated by|generated from)\s+<?(" + ADDR + r")", re.I)


def exim_alias(report: str) -> str:
    """Exim's "  pipe to |/prog\n    generated by user@host" blocks name no address first."""
    m = _GENERATED.search(report)
    return m.group(1) if m else ""


def _keep_head(line: str) -> bool:
    """Keep a whole head line when its text before the address matters (pipes, codes)."""
    return "|" in line or bool(re.match(r"\s*(?:<<<|>>>)?\s*[245]\d\d[ -]", line))


def has_signal(text: str) -> bool:
    """Does the text say anything: a status code, a reply code or more than three words?"""
    return bool(find_status(text) or find_reply_code(text) or len(text.split()) > 3)


# --------------------------------------------------------------------------------------------
# A recipient's diagnostic in the report text


def flatten(text: str) -> str:
    """Lower-case, one-space text without <addresses>, for "does A contain B" checks."""
    return " ".join(re.sub(r"<[^<>\s]*>:?", " ", text).split()).lower()


_MULTILINE_REPLY = re.compile(r"^<<< (\d{3})-(.*)\n((?:<<< \1[- ].*\n?)+)", re.M)


def complete_reply(diag: str, report: str) -> str:
    """Append the rest of a multi-line SMTP reply a transcript shows (550-... / 550 ...)."""
    flat = " ".join(diag.split())
    for m in _MULTILINE_REPLY.finditer(report):
        first = " ".join(m.group(2).split())
        if first and first in flat:
            rest = " ".join(line[8:].strip() for line in m.group(3).splitlines())
            return diag + " " + rest
    return diag


def text_for(report: str, address: str) -> str:
    """The paragraph(s) of the human-readable report that mention the address."""
    if not report or not address:
        return ""
    idx = report.lower().find(address.lower())
    if idx < 0:
        return ""
    idx = report.rfind("\n", 0, idx) + 1
    end = report.find("\n\n", idx)
    end2 = report.find("\n\n", end + 2) if end >= 0 else -1
    stop = end2 if end2 >= 0 else len(report)
    return report[idx : min(stop, idx + 4000)]


def remote_from_text(text: str) -> str:
    """The remote host a diagnostic names ("host mx.example.com said: ..."), or ``""``."""
    m = re.search(r"(?:host|server|by|from)\s+\[?([a-z0-9][a-z0-9.-]*\.[a-z]{2,})\]?",
                  text, re.I)
    return m.group(1) if m else ""


# --------------------------------------------------------------------------------------------
# Amazon SES notifications (JSON in the body)


def from_ses(texts: list[str]) -> tuple[str, list[Candidate]] | None:
    """("bounce" | "delivered", candidates) from an SES notification in the texts, else None."""
    for text in texts:
        if '"notificationType"' not in text and '"Type"' not in text:
            continue
        data = ses_json(text)
        if data is None:
            continue
        kind = str(data.get("notificationType") or data.get("eventType") or "")
        if kind == "Bounce" and isinstance(data.get("bounce"), dict):
            bounce = data["bounce"]
            cands = []
            for r in bounce.get("bouncedRecipients") or []:
                if not isinstance(r, dict):
                    continue
                dtype, diag = typed(str(r.get("diagnosticCode") or ""))
                cands.append(Candidate(
                    address=clean_address(str(r.get("emailAddress", ""))),
                    action=str(r.get("action") or "failed").lower(),
                    status=find_status(str(r.get("status") or "")),
                    diagnostic=diag or str(bounce.get("bounceSubType") or ""),
                    dtype=dtype,
                    remote_mta=str(bounce.get("remoteMtaIp") or ""),
                ))
            return "bounce", cands
        if kind == "Delivery":
            return "delivered", []
    return None
