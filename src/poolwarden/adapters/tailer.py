"""Follow one log path across rotations, truncation and restarts: bytes in, complete lines out.

``Tailer(path, checkpoint).poll()`` reads what is there now and yields, in order:
``Switch`` (lines now come from this file, from this offset), ``Chunk`` (complete,
newline-terminated lines of one file, with their byte offset), ``Gap`` (bytes that
can no longer be read: reported, never hidden) and ``Notice`` (worth logging, not a
loss). It never parses a line and never writes anything: the caller (``ingestd``)
stores the events of each chunk together with the position after it. A line without
its newline is never handed out until the newline arrives.

**Identity.** A file's content is identified by a fingerprint of its first bytes:
SHA-256 over the first min(``fingerprint_bytes``, offset) bytes *already consumed*
(1 KiB by default). A file shorter than that has a short fingerprint, which grows as
the file does (a checkpoint at offset 300 stores the hash of 300 bytes; one at 5,000,
of 1,024); a candidate matches a stored fingerprint of length n when its own first n
bytes hash the same. Inode and device only tell whether the path still names the open
file. So inode reuse (delete + create gets the old inode) is a new file, and a copy of
the file is the same content, wherever it is. Content consumed once in a session is
never handed out again: a file whose first bytes match it (a copy, a ``.gz``, a file
truncated back to a prefix) is read from where that content ends -- a re-fed line would
count as a new, repeated line in the correlator.

**Rotation.** The followed file is read through an open descriptor. When the path
names another file (``create``-style rename, delete + create), the old descriptor is
read for ``rotate_wait`` seconds more (the writer may still append until it reopens),
its last complete line included, then closed; an unterminated last line is a gap
(the writer will never finish it). Files rotated in between (``mail.log.1``,
``mail.log-20261123``, ``mail.log.20261123.gz``: names that start with the path's
name and ``.`` or ``-``) whose modification time is not older than the finished file's
(minus ``mtime_slack``) are read, oldest first, before the path's new file.

**Truncation and copytruncate.** A size below the offset or below what was seen, first
bytes that no longer match, or a new modification time without growth mean the content
was replaced in place. A rotated file with the old fingerprint (logrotate's copy, plain
or ``.gz``) supplies what was not read yet; the lines written between the copy and the
truncation exist nowhere: that is reported as a gap from the copy's end, with the bytes
seen before the truncation as a lower bound (``end`` None: the amount is unknowable).
Then the new content is read. Limit: while nothing of the file has been read yet
(offset 0), a truncation followed by new writes before the next poll looks like growth;
a copy that appeared meanwhile is still read first, but lines written between the copy
and the truncation then go unreported.

**Restart.** From a ``Checkpoint``: if the path's file matches the stored fingerprint,
is at least ``offset`` long and was not modified without growing, it is continued;
otherwise the file is looked for among the rotated files, plain or gzip (``postfix
logrotate`` gzips the renamed log: an unread tail then lives only in the ``.gz``), read
from ``offset`` to its end; if it is gone, a gap from ``offset`` (unknown end) is
reported. If the checkpoint's inode meanwhile holds other content while the old content
sits in a copy, that was copytruncate: its race is reported as a gap too (with a .gz
copy this cannot be told from rename + gzip + inode reuse; reported all the same).
Rotated files written since follow, then the path's file. Before that, the bytes from
the checkpoint's resume point (possibly in the file read before) up to ``offset`` are
re-read as ``Chunk(replay=True)``: already stored, only there to rebuild the messages
still open. Other compressions (.bz2, .xz, .zst) are not read (their tail is a gap).

No clock except ``clock`` (for ``rotate_wait``), no global state.
"""
from __future__ import annotations

import contextlib
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from poolwarden.adapters.logfiles import (
    FINGERPRINT_BYTES,
    MAX_LINE_BYTES,
    Chunk,
    Gap,
    Item,
    LogFile,
    Notice,
    Reader,
    Switch,
    fingerprint_length,
    fingerprint_of,
)
from poolwarden.adapters.rotated import RotatedFile, rotated_files
from poolwarden.ports import Checkpoint

__all__ = ["CHUNK_BYTES", "FINGERPRINT_BYTES", "MAX_LINE_BYTES", "MTIME_SLACK", "ROTATE_WAIT",
           "Chunk", "Gap", "Item", "LogFile", "Notice", "Switch", "Tailer", "fingerprint_of"]

CHUNK_BYTES = 256 * 1024  # bytes read per chunk (a few thousand lines)
ROTATE_WAIT = 1.0  # seconds a rotated file is still read before it is closed
MTIME_SLACK = 2.0  # seconds: a rotated file this much older than the one finished is old


@dataclass(eq=False, slots=True)
class _Open:
    file: LogFile
    reader: Reader
    offset: int = 0  # the next byte to hand out
    seen: int = 0  # the largest size observed (plain files)
    follow: bool = False  # the path's file: keep following it
    mtime_ns: int = 0  # the modification time last observed (followed files)

    @property
    def identity(self) -> tuple[int, int]:
        return self.file.device, self.file.inode


class Tailer:
    """Follows one path (see the module docstring). Not thread-safe; one per path."""

    def __init__(self, path: str | os.PathLike[str], checkpoint: Checkpoint | None, *,
                 fingerprint_bytes: int = FINGERPRINT_BYTES, chunk_bytes: int = CHUNK_BYTES,
                 rotate_wait: float = ROTATE_WAIT, mtime_slack: float = MTIME_SLACK,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
        self._dir, self._base = os.path.split(os.path.abspath(self.path))
        self._checkpoint = checkpoint
        self._fp_bytes = fingerprint_bytes
        self._chunk = chunk_bytes
        self._rotate_wait = rotate_wait
        self._slack = mtime_slack
        self._clock = clock
        self._cur: _Open | None = None
        self._serial = 0
        self._started = False
        self._moved_since: float | None = None  # when the path was first seen elsewhere
        # content consumed this session: (fingerprint, offset read up to). A file whose
        # first bytes match one continues that content: it is read from that offset, so
        # no line is ever fed twice (a repeat would count as a new line in the correlator)
        # (fingerprint, its bytes when known, offset read up to)
        self._done: deque[tuple[str, bytes | None, int]] = deque(maxlen=64)
        self._checked: set[tuple[int, int, int, float]] = set()  # rotated files looked at
        if checkpoint is not None and checkpoint.offset > 0:
            self._done.append((checkpoint.fingerprint, None, checkpoint.offset))

    # -- public ----------------------------------------------------------------

    def poll(self) -> Iterator[Item]:
        """Everything readable now, in order; returns at the end of what is there."""
        if not self._started:
            self._started = True
            yield from self._start()
        yield from self._follow()

    def lag(self) -> int:
        """Bytes written but not yet handed out (the current file and the path's file)."""
        lag = 0
        cur = self._cur
        if cur is not None and cur.reader.gz is None:
            with contextlib.suppress(OSError):
                lag += max(0, os.fstat(cur.reader.fd).st_size - cur.offset)
        if cur is None or not cur.follow:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if cur is None or (st.st_dev, st.st_ino) != cur.identity:
                    lag += st.st_size
        return lag

    def close(self) -> None:
        if self._cur is not None:
            self._cur.reader.close()
            self._cur = None

    # -- opening files ---------------------------------------------------------

    def _new_file(self, name: str, st: os.stat_result, compressed: bool) -> LogFile:
        self._serial += 1
        return LogFile(self._serial, name, st.st_dev, st.st_ino, compressed, st.st_mtime,
                       head_limit=self._fp_bytes)

    def _open_path(self) -> _Open | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return _Open(self._new_file(self.path, st, False), Reader(fd, False), seen=st.st_size,
                      follow=True, mtime_ns=st.st_mtime_ns)

    def _open_candidate(self, cand: RotatedFile) -> _Open | None:
        try:
            fd = os.open(cand.name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        st = os.fstat(fd)
        return _Open(self._new_file(cand.name, st, cand.compressed),
                     Reader(fd, cand.compressed), seen=0 if cand.compressed else st.st_size)

    def _rotated(self) -> list[RotatedFile]:
        return rotated_files(self._dir, self._base)

    def _matches(self, cand: RotatedFile, fingerprint: str) -> bool:
        length = fingerprint_length(fingerprint)
        head = cand.head(length)
        return len(head) == length and fingerprint_of(head) == fingerprint

    def _locate(self, fingerprint: str, offset: int, exclude: set[tuple[int, int]],
                candidates: list[RotatedFile], prefer: tuple[int, int] | None = None
                ) -> _Open | None:
        """The rotated file holding the content of ``fingerprint``: the one with the inode
        ``prefer`` (the file itself, renamed), else a plain copy, else a .gz."""
        if fingerprint_length(fingerprint) == 0:
            return None  # nothing was consumed: no content to look for
        for cand in sorted(candidates, key=lambda c: (c.device, c.inode) != prefer):
            if (cand.device, cand.inode) in exclude:
                continue
            if not cand.compressed and cand.size < offset:
                continue
            if self._matches(cand, fingerprint):
                opened = self._open_candidate(cand)
                if opened is not None:
                    opened.file.head = cand.head(min(self._fp_bytes, offset))
                    return opened
        return None

    # -- reading ----------------------------------------------------------------

    def _read(self, op: _Open, end: int | None, *, replay: bool = False) -> Iterator[Chunk]:
        """Complete lines from ``op.offset`` up to ``end`` (None: to the end of the file)."""
        while end is None or op.offset < end:
            limit = self._chunk if end is None else min(self._chunk, end - op.offset)
            data = op.reader.read(op.offset, limit)
            if not data:
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) < self._chunk:
                    return  # an unfinished line (or one not yet complete at ``end``): wait
                data = self._long_line(op, end)
                if not data:
                    return
                cut = len(data)
            chunk = data[:cut] if cut < len(data) else data
            op.file.extend_head(op.offset, chunk)
            yield Chunk(op.file, op.offset, chunk, replay)
            op.offset += cut

    def _long_line(self, op: _Open, end: int | None) -> bytes:
        """A line longer than a chunk: up to its newline, cut at ``MAX_LINE_BYTES``."""
        size = self._chunk
        while True:
            size = min(size * 4, MAX_LINE_BYTES)
            limit = size if end is None else min(size, end - op.offset)
            data = op.reader.read(op.offset, limit)
            cut = data.rfind(b"\n") + 1
            if cut:
                return data[:cut]
            if len(data) < size:
                return b""  # still unfinished (the file, or ``end``, stops first): wait
            if size >= MAX_LINE_BYTES:
                return data  # not a log line: consume it as one

    def _tail_gap(self, op: _Open, reason: str) -> Iterator[Gap]:
        """What is left after the last newline of a file that will not grow any more."""
        if op.reader.gz is not None:
            rest = op.reader.read(op.offset, MAX_LINE_BYTES)
            size = op.offset + len(rest)
            if op.reader.broken is not None:
                yield Gap(self.path, op.file.name, op.file.fingerprint(op.offset), op.offset,
                          None, len(rest), None, f"unreadable archive ({op.reader.broken})")
                return
        else:
            try:
                size = os.fstat(op.reader.fd).st_size
            except OSError:
                size = op.offset
        if size > op.offset:
            yield Gap(self.path, op.file.name, op.file.fingerprint(op.offset), op.offset, size,
                      size - op.offset, 1, reason)
        op.seen = max(op.seen, size)

    def _finish(self, op: _Open) -> Iterator[Item]:
        """Read a file that no longer grows to its end, report its unfinished tail, close it."""
        self._cur = op
        op.follow = False
        yield from self._read(op, None)
        yield from self._tail_gap(op, "the last line never got its newline")
        self._consumed(op.file, op.offset, max(op.offset, op.seen))  # the tail: a gap, done
        with contextlib.suppress(OSError):
            op.file.mtime = max(op.file.mtime, os.fstat(op.reader.fd).st_mtime)
        op.reader.close()
        self._cur = None

    def _consumed(self, file: LogFile, offset: int, end: int | None = None) -> None:
        """Content read (or reported lost) up to ``end``, identified at ``offset``."""
        if offset > 0:
            length = min(self._fp_bytes, offset)
            self._done.append((file.fingerprint(offset), file.head[:length],
                               offset if end is None else end))

    def _continues(self, head: Callable[[int], bytes], size: int | None, *,
                   growing: bool) -> int:
        """How far a file (its first bytes by ``head(n)``; ``size`` None when unknown, as
        for a .gz) holds content consumed already: 0 when it holds none. A file that is
        all a prefix of consumed content (a copy taken before we read further) is skipped
        whole, or, when it may still grow, up to its last complete line."""
        best = 0
        for fingerprint, known, end in self._done:
            length = fingerprint_length(fingerprint)
            first = head(length)
            if len(first) == length and fingerprint_of(first) == fingerprint:
                start = end if size is None else min(end, size)
            elif known is not None and 0 < len(first) < length \
                    and (size is None or size == len(first)) and first == known[:len(first)]:
                start = first.rfind(b"\n") + 1 if growing else len(first)
            else:
                continue
            best = max(best, start)
        return best

    # -- start (from a checkpoint) ---------------------------------------------

    def _start(self) -> Iterator[Item]:
        cp = self._checkpoint
        here = self._open_path()
        if cp is None:
            if here is not None:
                self._cur = here
                yield Switch(here.file, 0, "start", False)
            return
        candidates = self._rotated()
        exclude = {here.identity} if here is not None else set()
        if cp.offset == 0:
            # nothing consumed yet: an empty fingerprint matches any file, and the inode
            # may have been handed out again: rotated files written since the checkpoint
            # come first, then the path's file from 0
            yield from self._replay(cp, None, exclude, candidates)
            if here is not None and here.identity == (cp.device, cp.inode) \
                    and self._rewritten(here, cp):
                yield self._rewritten_gap(cp)
            yield from self._move_on(cp.mtime, here, set(), "start")
            return
        target: _Open | None = None
        if here is not None and self._same(here, cp):
            target = here
        else:
            target = self._locate(cp.fingerprint, cp.offset, exclude, candidates,
                                  (cp.device, cp.inode))
            if target is not None:
                yield Notice("relocated", f"{self.path}: the file read up to byte {cp.offset} "
                             f"is now {target.file.name}")
        yield from self._replay(cp, target, exclude, candidates)
        if target is None:
            if here is not None and here.identity == (cp.device, cp.inode) \
                    and self._rewritten(here, cp):
                yield self._rewritten_gap(cp)
            else:
                yield Gap(self.path, self.path, cp.fingerprint, cp.offset, None, 0, None,
                          "the file read up to this offset is gone (rotated and deleted, "
                          "truncated, or replaced while stopped)")
            yield from self._move_on(cp.mtime - self._slack, here, set())
            return
        target.offset = cp.offset
        self._cur = target
        yield Switch(target.file, cp.offset, "resume", False)
        if target is here:
            return  # _follow continues it
        compressed = target.file.compressed
        yield from self._finish(target)
        inode = (cp.device, cp.inode)
        holder = (here is not None and here.identity == inode) or any(
            (c.device, c.inode) == inode and not c.compressed for c in candidates)
        copied = not compressed and target.identity != inode  # a rename keeps the inode
        if (holder or copied) and target.identity != inode:
            # the old content is in a plain file of another inode (a copy: a rename keeps
            # the inode), or its inode (at the path, or rotated since) holds other content:
            # copied, then truncated in place (copytruncate) while we were stopped. With a
            # .gz and the inode at the path that is
            # indistinguishable from rename + gzip + the inode handed out again: reported
            # all the same (a possible gap, amount unknown), never left out
            what = ("copytruncate: lines written between the copy and the truncation "
                    "exist in neither file")
            if compressed:
                what += " (or a rename + gzip that handed the inode out again: then none)"
            yield Gap(self.path, target.file.name, target.file.fingerprint(target.offset),
                      target.offset, None, 0, None, what)
        yield from self._move_on(cp.mtime - self._slack, here, {target.identity})

    @staticmethod
    def _rewritten(here: _Open, cp: Checkpoint) -> bool:
        """Modified since the checkpoint without growing past it: written, then truncated
        back (copytruncate on a file with nothing new), or touched."""
        return here.seen <= cp.offset and here.file.mtime != cp.mtime

    def _rewritten_gap(self, cp: Checkpoint) -> Gap:
        return Gap(self.path, self.path, cp.fingerprint, cp.offset, None, 0, None,
                   "modified while stopped without growing: truncated after writes nobody "
                   "read (copytruncate?), or touched")

    def _same(self, here: _Open, cp: Checkpoint) -> bool:
        """Whether the path's file is the checkpoint's content and still reaches its offset."""
        if here.seen < cp.offset or self._rewritten(here, cp):
            return False
        length = fingerprint_length(cp.fingerprint)
        head = here.reader.head(length)
        if len(head) != length or fingerprint_of(head) != cp.fingerprint:
            return False
        here.file.head = here.reader.head(min(self._fp_bytes, cp.offset))
        return True

    def _replay(self, cp: Checkpoint, target: _Open | None, exclude: set[tuple[int, int]],
                candidates: list[RotatedFile]) -> Iterator[Item]:
        start = cp.resume_offset
        if cp.resume_fingerprint is not None and cp.resume_fingerprint != cp.fingerprint:
            previous = self._locate(cp.resume_fingerprint, cp.resume_offset,
                                    exclude | ({target.identity} if target else set()),
                                    candidates)
            if previous is None:
                yield Notice("context-lost", f"{self.path}: the file read before the "
                             "checkpoint's is gone: messages open at the restart lose the "
                             "lines it held")
            else:
                previous.offset = cp.resume_offset
                yield Switch(previous.file, cp.resume_offset, "replay", True)
                yield from self._read(previous, None, replay=True)
                self._consumed(previous.file, previous.offset)  # not an unread rotated file
                previous.reader.close()
            start = 0
        if target is not None and start < cp.offset:
            target.offset = start
            yield Switch(target.file, start, "replay", True)
            yield from self._read(target, cp.offset, replay=True)

    # -- following ---------------------------------------------------------------

    def _follow(self) -> Iterator[Item]:
        while True:
            cur = self._cur
            if cur is None:
                here = self._open_path()
                if here is None:
                    return
                yield from self._move_on(float("inf"), here, set(), "created")
                continue
            try:
                st = os.fstat(cur.reader.fd)
            except OSError:  # pragma: no cover - a descriptor we hold does not vanish
                return
            size = st.st_size
            shrunk = size < cur.offset or size < cur.seen
            rewritten = size == cur.seen == cur.offset and st.st_mtime_ns != cur.mtime_ns
            if shrunk or rewritten or not self._head_intact(cur):
                yield from self._truncated(cur, st)
                continue
            if cur.offset == 0 and self._unread(cur.file.mtime - self._slack,
                                                {cur.identity}):
                # nothing read from it yet, yet a rotated file appeared since: a copy taken
                # by copytruncate (the truncation hidden by new writes) or a file rotated in
                # between. Read it first; the path's file then continues past what it holds.
                self._checked.clear()
                yield from self._move_on(cur.file.mtime - self._slack, cur, set(), "rotated")
                continue
            cur.file.mtime, cur.mtime_ns, cur.seen = st.st_mtime, st.st_mtime_ns, size
            yield from self._read(cur, size)
            if self._path_is(cur):
                self._moved_since = None
                return
            now = self._clock()
            if self._moved_since is None:
                self._moved_since = now
            if now - self._moved_since < self._rotate_wait:
                return  # the writer may still append to the renamed file: read it again later
            self._moved_since = None
            threshold = cur.file.mtime - self._slack
            yield from self._finish(cur)
            yield from self._move_on(threshold, None, {cur.identity})

    def _head_intact(self, cur: _Open) -> bool:
        length = min(self._fp_bytes, cur.offset)
        if length == 0:
            return True
        return cur.reader.read(0, length) == cur.file.head[:length]

    def _path_is(self, cur: _Open) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == cur.identity

    def _truncated(self, cur: _Open, st: os.stat_result) -> Iterator[Item]:
        """The followed file was truncated (or rewritten) in place: recover what a copy
        holds, report the rest, then read the new content (same descriptor)."""
        old = cur.file
        offset, seen = cur.offset, max(cur.seen, st.st_size)
        threshold = old.mtime - self._slack  # as last seen, before the change
        fingerprint = old.fingerprint(offset)
        copy = None
        if offset > 0:
            copy = self._locate(fingerprint, offset, {cur.identity}, self._rotated())
        if copy is not None:
            copy_name = copy.file.name
            old.name, old.device, old.inode = copy_name, copy.file.device, copy.file.inode
            old.compressed = copy.file.compressed
            copy.file = old  # the same content: it keeps its identity and serial
            copy.offset = offset
            self._cur = copy
            yield from self._read(copy, None)
            end = copy.offset
            with contextlib.suppress(OSError):
                end = max(end, os.fstat(copy.reader.fd).st_size)
            yield Gap(self.path, copy_name, old.fingerprint(copy.offset), copy.offset, None,
                      max(0, max(seen, end) - copy.offset), None,
                      "copytruncate: lines written between the copy and the truncation "
                      "exist in neither file")
            self._consumed(old, copy.offset)
            copy.reader.close()
        else:
            why = ("truncated in place, and no rotated copy holds the unread part"
                   if offset else "modified without growing: truncated after writes nobody "
                   "read (copytruncate?), or touched")
            yield Gap(self.path, self.path, fingerprint, offset, None, max(0, seen - offset),
                      None, why)
            self._consumed(old, offset)
        fresh = _Open(self._new_file(self.path, st, False), cur.reader, seen=st.st_size,
                      follow=True, mtime_ns=st.st_mtime_ns)
        yield from self._move_on(threshold, fresh, {cur.identity}, "truncated")

    def _unread(self, threshold: float, exclude: set[tuple[int, int]]
                ) -> list[tuple[RotatedFile, int]]:
        """Rotated files not older than ``threshold`` holding bytes nobody read, oldest
        first, each with where those bytes start (past content consumed already)."""
        todo: list[tuple[RotatedFile, int]] = []
        for cand in sorted(self._rotated(), key=lambda c: (c.mtime, c.compressed, c.name)):
            key = (cand.device, cand.inode, cand.size, cand.mtime)
            if cand.mtime < threshold or (cand.device, cand.inode) in exclude \
                    or cand.size == 0 or key in self._checked:
                continue
            start = self._continues(cand.head,
                                    None if cand.compressed else cand.size, growing=False)
            if len(self._checked) > 4096:
                self._checked.clear()
            self._checked.add(key)  # either read now or nothing new in it
            if start and not cand.compressed and start >= cand.size:
                continue  # read already (a copy, a .gz of what was read)
            todo.append((cand, start))
        return todo

    def _move_on(self, threshold: float, here: _Open | None, exclude: set[tuple[int, int]],
                 reason: str = "rotated") -> Iterator[Item]:
        """After the file read so far: rotated files nobody read yet (from where content
        already consumed ends, if they continue it), then the path's file."""
        if here is None:
            here = self._open_path()
        if here is not None:
            exclude = exclude | {here.identity}
        for cand, start in self._unread(threshold, exclude):
            opened = self._open_candidate(cand)
            if opened is None:
                continue
            opened.offset = start
            opened.file.head = cand.head(min(self._fp_bytes, start))
            yield Switch(opened.file, start, "unread-rotated", False)
            yield from self._finish(opened)
        if here is not None:
            reader = here.reader
            start = self._continues(reader.head, os.fstat(reader.fd).st_size, growing=True)
            here.offset = start
            here.file.head = reader.head(min(self._fp_bytes, start))
            self._cur = here
            yield Switch(here.file, start, reason, False)
