"""``poolwarden classify [--json] FILE.eml...``: what each bounce or complaint says.

Reads each file (the only I/O here), parses it with ``wire.dsn.parse`` and
prints, per file, each failed recipient with reason, class, DSN status and
hard/soft, and the rule that decided. With ``--json``: one JSON object per file
and line, ``{"file", "kind", "recipients": [{"address", "reason", "class",
"hard", "reply_code", "dsn_status", "diagnostic", "rule", "provider_code",
"about"}]}`` plus ``"feedback_type"`` for complaints; ``diagnostic`` is the
reply text, at most ``MAX_DIAGNOSTIC`` characters, printable only. Text from
the messages is printed with control characters escaped (it is
attacker-controlled). Start-up matters (one file is a common call): this module
imports only the wire parser, never the store, the configuration or services.
Exit status: 0, or 2 when a file could not be read (the others are still done).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from poolwarden.wire.dsn import MAX_BYTES, ParsedFeedback, parse

__all__ = ["MAX_DIAGNOSTIC", "classify_command", "result_json"]

MAX_DIAGNOSTIC = 500  # characters of reply text per recipient in --json (an operator's "why")


def result_json(name: str, result: ParsedFeedback) -> dict[str, Any]:
    """The --json object for one file."""
    out: dict[str, Any] = {
        "file": name,
        "kind": result.kind,
        "recipients": [
            {
                "address": r.address,
                "reason": r.reason,
                "class": r.bounce_class,
                "hard": r.hard,
                "reply_code": r.reply_code,
                "dsn_status": r.dsn_status,
                "diagnostic": _safe(r.diagnostic[:MAX_DIAGNOSTIC]),
                "rule": r.rule_id,
                "provider_code": r.provider_code,
                "about": r.about,
            }
            for r in result.recipients
        ],
    }
    if result.kind == "complaint":
        out["feedback_type"] = result.feedback_type
    return out


def _safe(text: str) -> str:
    """Printable text only: control characters (ANSI escapes, CR/LF) shown escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _read(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_BYTES + 1)  # parse() rejects anything longer, unread


def classify_command(files: list[Path], json_out: bool, *, out: TextIO | None = None,
                     err: TextIO | None = None) -> int:
    """Classify every file; print one block (or one JSON line) per file."""
    out = out or sys.stdout
    err = err or sys.stderr
    status = 0
    for path in files:
        try:
            raw = _read(path)
        except OSError as exc:
            print(f"error: {_safe(str(path))}: {_safe(exc.strerror or str(exc))}", file=err)
            status = 2
            continue
        result = parse(raw)
        if json_out:
            print(json.dumps(result_json(str(path), result), ensure_ascii=False), file=out)
            continue
        head = f"{_safe(str(path))}: {result.kind}"
        if result.kind == "complaint":
            head += f" ({_safe(result.feedback_type or 'abuse')})"
        if result.problems:
            head += " - " + "; ".join(_safe(p) for p in result.problems)
        print(head, file=out)
        for r in result.recipients:
            print(f"  {_safe(r.address):<40} {r.reason:<16} {r.bounce_class:<11} "
                  f"{_safe(r.reply_code) or '-':<4} {_safe(r.dsn_status) or '-':<9} "
                  f"{'hard' if r.hard else 'soft'} {r.rule_id}", file=out)
        for c in result.complaints:
            print(f"  {_safe(c.recipient) or '-':<40} {c.feedback_type:<16} complaint "
                  f"{_safe(c.format)}", file=out)
    return status
