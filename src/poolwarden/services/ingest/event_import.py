"""One-off import of outcome events from a JSON-lines file (tests, backfills).

Validates every line before storing anything, so a malformed line stops the
import with its line number and field and leaves the store as it was; then
stores all events in one idempotent transaction and, optionally, evaluates tiers.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.progress import Progress

from poolwarden.core.errors import InputError
from poolwarden.core.events import Event
from poolwarden.services.reputation.engine import Engine, ImportResult

MAX_LINE_BYTES = 64 * 1024


def read_events(engine: Engine, path: Path, *, progress: bool) -> tuple[int, list[Event]]:
    source = str(path)
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=source) from exc
    events: list[Event] = []
    lines = 0
    with handle, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("reading events", total=size)
        for number, raw in enumerate(handle, start=1):
            lines = number
            bar.update(task, advance=len(raw))
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"line longer than {MAX_LINE_BYTES} bytes", source=source,
                                 line=number)
            text = raw.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise InputError(f"not valid JSON ({reason})", source=source,
                                 line=number) from None
            events.append(engine.parse_record(record, source=source, line=number))
    return lines, events


def import_event_file(engine: Engine, path: Path, *, progress: bool, now: float,
                      evaluate: bool = True) -> ImportResult:
    lines, events = read_events(engine, path, progress=progress)
    result = engine.add_events(events)
    moves = engine.evaluate(now) if evaluate else []
    return ImportResult(lines=lines, added=result.added, duplicates=result.duplicates,
                        moves=tuple(moves))
