"""``poolwarden ingest mail``: feedback messages from files and Maildirs, through the same
``FeedbackService`` the LMTP listener uses, stored a batch at a time.

A message that cannot be read, or that is over the size cap, is counted (or recorded as
rejected) and the next one is processed; one whose DKIM key lookup failed for a temporary
reason is left out (nothing stored) so importing it again later counts it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from poolwarden.services.feedback.intake import Assessment, DkimTemporaryError, FeedbackService


@dataclass(slots=True)
class MailIngestSummary:
    messages: int = 0
    trusted: int = 0
    untrusted: int = 0
    rejected: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    rows_added: int = 0
    events_added: int = 0


def mail_files(path: Path) -> list[Path]:
    """The messages at ``path``: the file itself, or every file in a Maildir's ``cur/`` and
    ``new/`` (``tmp/`` holds deliveries in progress and is left alone), in name order."""
    if not path.is_dir():
        return [path]
    found: list[Path] = []
    for sub in ("cur", "new"):
        folder = path / sub
        if folder.is_dir():
            found.extend(sorted(p for p in folder.iterdir() if p.is_file()
                                and not p.name.startswith(".")))
    return found


def is_maildir(path: Path) -> bool:
    return path.is_dir() and ((path / "cur").is_dir() or (path / "new").is_dir())


def _read_capped(path: Path, cap: int) -> tuple[bytes, int]:
    """At most ``cap + 1`` bytes of the file (enough to know it is too large), and its size."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return handle.read(cap + 1), size


def ingest_files(service: FeedbackService, files: Iterable[Path], *, batch: int = 200,
                 received_at: float | None = None) -> MailIngestSummary:
    """Assess every message and store them ``batch`` at a time; a message that cannot be
    read or parsed is counted (or recorded as rejected) and the next one is processed."""
    summary = MailIngestSummary()
    pending: list[Assessment] = []
    cap = service.settings.max_message_bytes

    def flush() -> None:
        if pending:
            stored = service.store(pending)
            summary.rows_added += stored.rows_added
            summary.events_added += stored.events_added
            pending.clear()

    for path in files:
        try:
            raw, size = _read_capped(path, cap)
        except OSError as exc:
            summary.unreadable.append((str(path), exc.strerror or type(exc).__name__))
            continue
        summary.messages += 1
        if len(raw) > cap:
            assessment = service.rejected(
                f"rejected: too large ({size} bytes > {cap})", source=str(path),
                raw_size=size, received_at=received_at,
                identity=f"sha256:{hashlib.sha256(raw).hexdigest()}|{size}")
        else:
            try:
                assessment = service.assess(raw, source=str(path), received_at=received_at)
            except DkimTemporaryError as exc:  # nothing stored: importing it again will do
                summary.messages -= 1
                summary.unreadable.append((str(path), f"{exc}; import it again later"))
                continue
        setattr(summary, assessment.status, getattr(summary, assessment.status) + 1)
        pending.append(assessment)
        if len(pending) >= batch:
            flush()
    flush()
    return summary
