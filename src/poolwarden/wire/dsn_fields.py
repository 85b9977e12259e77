"""RFC 3464 delivery-status fields -> one ``Candidate`` per failed recipient.

Its one job is reading the per-recipient ``message/delivery-status`` fields
(Final-Recipient, Action, Status, Diagnostic-Code, Remote-MTA, Reporting-MTA) of
a standard DSN, and defining the ``Candidate`` record that every bounce reader
fills (this one, and the non-standard scrapers in ``wire.bounce_text``) before
``wire.dsn`` classifies it. Pure: text in, values out. It never touches the
MIME structure or the size caps (``wire.dsn`` applies those first), never
classifies, and never does I/O. Addresses found here are display data only
(docs/testing.md B4/B5).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

from poolwarden.wire.bounce_classify import find_status

__all__ = ["ADDR", "Candidate", "clean_address", "from_dsn", "typed"]

# One e-mail address, as found in bounce text (untrusted; display data only).
ADDR = r"[A-Za-z0-9._%+=/'&!#$^*{}|~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"  # noqa: E501
_ADDR_RE = re.compile(ADDR)


def clean_address(value: str) -> str:
    """The first address in ``value``, trailing dots stripped, or ``""``."""
    m = _ADDR_RE.search(value or "")
    return m.group(0).strip(".") if m else ""


@dataclass(slots=True)
class Candidate:
    """One failed recipient as a reader found it, before classification."""

    address: str
    action: str = ""
    status: str = ""
    diagnostic: str = ""
    dtype: str = ""
    remote_mta: str = ""
    reply: str = ""
    preset: str = ""  # a reason the bounce format itself states
    command: str = ""  # the SMTP command, when the format shows it ("RCPT TO: <a@b>")


def typed(value: str) -> tuple[str, str]:
    """'rfc822; a@b' -> ('rfc822', 'a@b'); 'smtp; 550 ...' -> ('smtp', '550 ...')."""
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9-]{1,20}\s*", kind):
        return kind.strip().lower(), rest.strip()
    return "", value.strip()


def _dsn_blocks(text: str) -> list[dict[str, str]]:
    """'Name: value' blocks separated by blank lines; continuation lines unfolded."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name.strip()):
            continue
        key = name.strip().lower()
        if key in current:
            # a second block without a blank line between: start a new one
            if key in ("final-recipient", "original-recipient") and (
                "final-recipient" in current or "original-recipient" in current
            ) and key != "original-recipient":
                blocks.append(current)
                current = {}
            else:
                last = key
                continue
        current[key] = value.strip()
        last = key
    if current:
        blocks.append(current)
    return blocks


def from_dsn(texts: list[str]) -> tuple[list[Candidate], str]:
    """(one candidate per recipient block, the first Reporting-MTA) of delivery-status texts."""
    cands: list[Candidate] = []
    reporting = ""
    for text in texts:
        for block in _dsn_blocks(text):
            if "reporting-mta" in block and not reporting:
                reporting = typed(block["reporting-mta"])[1]
            addr = ""
            for key in ("final-recipient", "original-recipient", "x-actual-recipient"):
                if key in block:
                    addr = clean_address(typed(block[key])[1])
                    if addr:
                        break
            if not addr:
                continue
            dtype, diag = typed(block.get("diagnostic-code", ""))
            cands.append(Candidate(
                address=addr,
                action=block.get("action", "").strip().lower().split(" ")[0],
                status=find_status(block.get("status", "")),
                diagnostic=diag,
                dtype=dtype,
                remote_mta=typed(block.get("remote-mta", ""))[1],
            ))
    return cands, reporting


def ses_json(text: str) -> dict[str, Any] | None:
    """The Amazon SES notification JSON in a body (unwrapped from an SNS envelope), if any."""
    start = text.find("{")
    if start < 0:
        return None
    text = re.sub(r"!\r?\n ", "", text)
    try:
        data = json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        with contextlib.suppress(ValueError):
            data = json.loads(data["Message"])
    return data if isinstance(data, dict) else None
