"""``poolwarden ingest log``: the one-off import of Postfix log archives (plain or .gz),
exactly once, with a checkpoint per imported content.

Shares ``ingestd``'s pipeline (parse, correlate, map, store with the position in one
transaction) and its store worker; what differs is identity: an import keeps one
checkpoint per imported *content* (not per path), so a content imported before, under any
name or gzipped, is not parsed again and a grown file is parsed from where the last
import stopped (see ``import_logs``).
"""

from __future__ import annotations

import functools
import gzip
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolwarden.adapters.event_rows import EventRow
from poolwarden.adapters.logfiles import fingerprint_length, fingerprint_of
from poolwarden.adapters.tailer import (
    CHUNK_BYTES,
    MAX_LINE_BYTES,
)
from poolwarden.config.load import LoadedConfig
from poolwarden.core.errors import InputError
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult, Checkpoint, Store
from poolwarden.services.ingest.ingestd import BATCH_LINES, MAX_REPLAY_BYTES, Writer
from poolwarden.services.ingest.pipeline import (
    BatchCallback,
    DeliveryMapper,
    IngestMetrics,
    Pipeline,
    gc_paused,
    lookup_decisions,
    notify_batch,
    parser_at,
    parser_state,
    store_batch,
)
from poolwarden.services.ingest.store_worker import StoreWorker, store_batch_in, worker_url
from poolwarden.wire.postfix_correlate import Delivery
from poolwarden.wire.postfix_log import LogParser

# -- one-off import -----------------------------------------------------------------------


@dataclass(slots=True)
class ImportLogsResult:
    files: int
    metrics: IngestMetrics
    unterminated: int  # files whose last line had no newline (not imported)
    known_files: int = 0  # files whose content was imported before, read on from there
    skipped_bytes: int = 0  # bytes of those not parsed again (imported already)


# Imports keep one checkpoint per imported *content*, source ``import:<fingerprint>``, the
# fingerprint of the first IMPORT_ID_BYTES of the decompressed content: the same bytes
# under a rotated name or gzipped have the same identity, and no followed path (an absolute
# path) ever starts with "import:".
IMPORT_SOURCE = "import:"
IMPORT_ID_BYTES = 64 * 1024
# The checkpoint's ``fingerprint`` is that of the IMPORT_TAIL_BYTES before ``offset``: a
# content with the same head but other bytes where the last import stopped is another file.
IMPORT_TAIL_BYTES = 4096


def import_source(head: bytes) -> str:
    """The checkpoint source of an imported content whose first bytes are ``head``."""
    return IMPORT_SOURCE + fingerprint_of(head[:IMPORT_ID_BYTES])


def _open_archive(path: Path) -> tuple[Any, Any]:
    """(reader of the content, the underlying file for progress): gzip by magic number."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    raw.seek(0)
    return raw, raw


def _read_at(reader: Any, offset: int, size: int) -> bytes:
    """``size`` bytes of the content from ``offset`` (fewer at its end); a gzip stream seeks
    by decompressing (backwards: from its start again)."""
    reader.seek(offset)
    data = b""
    while len(data) < size and (more := reader.read(size - len(data))):
        data += more
    return data


def _known_offset(reader: Any, mark: Checkpoint | None) -> tuple[int, bytes]:
    """How much of this content the last import stored and the bytes before that point:
    ``mark.offset`` when those bytes are the ones it read, else 0 (another content with
    the same head)."""
    if mark is None or mark.offset <= 0:
        return 0, b""
    size = fingerprint_length(mark.fingerprint)
    tail = _read_at(reader, mark.offset - size, size)
    if fingerprint_of(tail) != mark.fingerprint:
        return 0, b""
    return mark.offset, tail


def import_logs(config: LoadedConfig, store: Store, files: Sequence[Path], *,
                batch_lines: int = BATCH_LINES, progress: Callable[[int], None] | None = None,
                snapshot: Snapshot | None = None, now: float | None = None,
                pipelined: bool = False, on_batch: BatchCallback | None = None,
                store_process: bool = False,
                max_replay_bytes: int = MAX_REPLAY_BYTES,
                on_added: Callable[[AddResult], None] | None = None) -> ImportLogsResult:
    """Import Postfix log archives (plain or gzip), oldest first (by modification time).

    One correlator runs over all of them, so a message spanning two archives keeps its
    context; each file's year-less dates are placed by its own modification time.
    Idempotent: importing the same files again adds nothing. A last line without a
    newline is not imported (a file still being written will finish it). ``pipelined``
    stores each batch on a worker thread while the next is parsed (a file store only:
    not an in-memory SQLite database, whose one connection cannot be shared), and with
    ``store_process`` in a child process for a SQLite file (``services.ingest.store_worker``).
    ``on_added`` is told every committed batch's result (its counter deltas: a long-lived
    engine feeds on them instead of reading the store's counters again).

    **Per-content checkpoints.** Each batch is stored with a checkpoint of the content it
    came from (``import_source``: the first 64 KiB, decompressed), in the same transaction,
    and each file ends with one. Importing a content again reads its head and the 4 KiB
    before the recorded offset, and when those match, parses nothing before that offset:
    the same file (renamed, or gzipped) costs two small reads, and a file that grew since
    parses only the appended lines. The correlator needs the earlier lines of messages
    still open at the offset (their client, sender, SASL user, deferrals), so the checkpoint
    also keeps where the oldest of them began (as ``Ingestd``'s do): those lines are re-read
    without storing anything (``lines_replayed``) before the new ones; likewise the tail of
    a file imported before is re-read when a later file of the same import is new, so a
    message spanning the two keeps its context. A message that began in an earlier file,
    or more than ``max_replay_bytes`` back, re-reads the whole file or loses that context.
    Deliveries are keyed by content, not position, so a different file with the same first
    64 KiB and other bytes at the offset is simply read whole (its repeats are duplicates).
    Imports never touch a followed path's checkpoint.
    """
    if snapshot is None:
        from poolwarden.services.reputation.engine import Engine

        at = time.time() if now is None else now
        snapshot = Engine(config, store, now=at).snapshot(at)
    metrics = IngestMetrics()
    mapper = DeliveryMapper(snapshot, metrics)
    pipeline = Pipeline(LogParser(reference=0.0))
    ordered = sorted(files, key=lambda p: (p.stat().st_mtime, str(p)))
    result = ImportLogsResult(files=len(ordered), metrics=metrics, unterminated=0)
    pending = 0

    writer = Writer(threaded=pipelined)
    url = worker_url(store) if pipelined and store_process else None
    worker: StoreWorker | None = None

    def start_worker() -> None:
        """Start the store's child process once there is something to parse (it starts
        while the first batch is parsed; a content imported already never needs it)."""
        nonlocal worker
        if url is not None and worker is None:
            worker = StoreWorker(url)

    def stored(rows: list[EventRow], sources: list[Delivery] | None,
               checkpoint: Checkpoint | None) -> None:
        with_events = on_batch is not None
        added = (store_batch(store, rows, checkpoint, with_events=with_events)
                 if worker is None
                 else store_batch_in(worker, rows, checkpoint, with_events=with_events))
        metrics.events_stored += added.added
        metrics.duplicates += added.duplicates
        metrics.commits += 1
        if on_added is not None:
            on_added(added)
        if on_batch is not None and sources is not None:
            notify_batch(on_batch, added, sources, rows, metrics)

    def commit(checkpoint: Checkpoint | None) -> None:
        deliveries = pipeline.take()
        metrics.deliveries += len(deliveries)
        sources: list[Delivery] | None = [] if on_batch is not None else None
        rows = mapper.rows(deliveries, lookup_decisions(store, deliveries), sources)
        writer.submit(functools.partial(stored, rows, sources, checkpoint))

    def mark(source: str, serial: int, offset: int, tail: bytes, st: os.stat_result
             ) -> Checkpoint | None:
        """The checkpoint of a content read up to ``offset`` (None before any line)."""
        if offset <= 0:
            return None
        resume = offset
        year, month = parser_state(pipeline.parser)
        oldest = pipeline.correlator.oldest_mark()
        if oldest is not None:
            began, at, year_at, month_at = oldest
            if began == serial:
                resume, year, month = at, year_at, month_at
            else:  # began in an earlier file: the whole of this one rebuilds what it can
                resume, year, month = 0, None, 0
        if offset - resume > max_replay_bytes:
            resume, (year, month) = offset, parser_state(pipeline.parser)
        return Checkpoint(source=source, fingerprint=fingerprint_of(tail), inode=st.st_ino,
                          device=st.st_dev, offset=offset, resume_offset=resume,
                          updated_at=time.time(), mtime=st.st_mtime, year=year, month=month)

    def feed(reader: Any, raw: Any, serial: int, offset: int, end: int | None,
             source: str, st: os.stat_result, tail: bytes = b"") -> tuple[int, bool]:
        """Feed the content from ``offset`` (a line start; ``tail``: the bytes before it)
        to ``end`` (None: its end; else a replay: nothing emitted, nothing counted as
        read); returns the offset reached and whether a last line had no newline."""
        nonlocal pending
        replay = end is not None
        carry, done = b"", raw.tell()
        while True:
            size = CHUNK_BYTES if end is None else min(CHUNK_BYTES, end - offset - len(carry))
            try:
                block = reader.read(size) if size > 0 else b""
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"unreadable archive: {exc}", source=str(path_of[serial])
                                 ) from exc
            if progress is not None and not replay:
                position = raw.tell()
                progress(position - done)
                done = position
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if not cut and len(data) > MAX_LINE_BYTES:
                data += b"\n"  # not a log line: consumed as one, as the tailer does
                cut = len(data)
            carry = data[cut:]
            if not cut:
                continue
            lines = pipeline.feed(serial, offset, data[:cut], emit=not replay)
            offset += cut
            if replay:
                metrics.lines_replayed += lines
                continue
            tail = data[max(0, cut - IMPORT_TAIL_BYTES):cut] if cut >= IMPORT_TAIL_BYTES \
                else (tail + data[:cut])[-IMPORT_TAIL_BYTES:]
            tails[serial] = tail
            metrics.lines_read += lines
            metrics.bytes_read += cut
            pending += lines
            if pending >= batch_lines:
                commit(mark(source, serial, offset, tail, st))
                pending = 0
        return offset, bool(carry)

    path_of: dict[int, Path] = {}
    tails: dict[int, bytes] = {}

    def read(serial: int, path: Path, last: bool) -> None:
        """Import one archive, from where an earlier import of its content stopped."""
        nonlocal pending
        path_of[serial] = path
        try:
            reader, raw = _open_archive(path)
            st = os.fstat(raw.fileno())
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from exc
        with raw, reader:
            try:
                source = import_source(_read_at(reader, 0, IMPORT_ID_BYTES))
                known = store.checkpoint(source)
                offset, before = _known_offset(reader, known)
                more = offset > 0 and bool(_read_at(reader, offset, 1))
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"unreadable archive: {exc}", source=str(path)) from exc
            if known is None or not offset:
                start_worker()
                pipeline.set_parser(LogParser(reference=st.st_mtime))
                reader.seek(0)
                offset = 0
            else:
                result.known_files += 1
                if not more and last:  # nothing new, and no later file needs its context
                    result.skipped_bytes += offset
                    if progress is not None:
                        progress(st.st_size)
                    return
                start_worker()
                pipeline.set_parser(parser_at(known.year, known.month, st.st_mtime))
                reader.seek(known.resume_offset)
                feed(reader, raw, serial, known.resume_offset, offset, source, st)
                result.skipped_bytes += offset
                reader.seek(offset)
                if progress is not None:
                    progress(raw.tell())
            end, unterminated = feed(reader, raw, serial, offset, None, source, st, before)
            result.unterminated += unterminated
        if end > offset:  # this file's final checkpoint, with the rest of its lines
            commit(mark(source, serial, end, tails[serial], st))
            pending = 0

    try:
        with gc_paused():
            for serial, path in enumerate(ordered, start=1):
                read(serial, path, serial == len(ordered))
            if pipeline.deliveries:
                commit(None)
            writer.wait()
    finally:
        writer.close()
        if worker is not None:
            worker.close()
    return result
