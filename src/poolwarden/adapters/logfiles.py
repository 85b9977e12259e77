"""What the tailer hands out, and how it reads: file identity (fingerprints), the items of
``Tailer.poll`` (``Switch``, ``Chunk``, ``Gap``, ``Notice``) and a reader by offset of a
plain file or a gzip stream. Files only; no parsing, no store.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

FINGERPRINT_BYTES = 1024
MAX_LINE_BYTES = 4 * 1024 * 1024  # a longer "line" is cut here (it is not Postfix's)


def fingerprint_of(head: bytes) -> str:
    """``"<n>:<sha256 hex>"`` of ``head`` (the first n bytes of a file)."""
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()}"


def fingerprint_length(fingerprint: str) -> int:
    length, _, _ = fingerprint.partition(":")
    return int(length) if length.isdigit() else 0


@dataclass(eq=False, slots=True)
class LogFile:
    """One file's content as the tailer knows it. ``name``, ``device`` and ``inode`` say
    where it was last found (a rotated copy or a ``.gz`` keeps the identity: the content)."""

    serial: int  # increases with every file this tailer opens
    name: str
    device: int
    inode: int
    compressed: bool
    mtime: float
    head: bytes = b""  # the first consumed bytes, up to the fingerprint length
    head_limit: int = FINGERPRINT_BYTES

    def fingerprint(self, offset: int) -> str:
        """The fingerprint a checkpoint at ``offset`` stores."""
        length = min(self.head_limit, offset)
        assert len(self.head) >= length, "head shorter than the consumed bytes"
        return fingerprint_of(self.head[:length])

    def extend_head(self, start: int, data: bytes) -> None:
        have = len(self.head)
        if have < self.head_limit and start <= have < start + len(data):
            self.head += data[have - start:self.head_limit - start]


class Chunk(NamedTuple):
    file: LogFile
    start: int  # byte offset of data[0] in the file
    data: bytes  # complete lines, each ending in b"\n"
    replay: bool  # already stored: re-read only to rebuild open messages


class Switch(NamedTuple):
    """From here on, lines come from ``file`` starting at ``offset``."""

    file: LogFile
    offset: int
    reason: str  # start, created, resume, replay, rotated, truncated, unread-rotated
    replay: bool


class Gap(NamedTuple):
    """Bytes of a file that will never be read."""

    source: str  # the followed path
    name: str  # where the bytes were (the path, a rotated name, or the path when gone)
    fingerprint: str  # the file's fingerprint as last stored or read
    start: int
    end: int | None  # None: unknown (the file is gone or was truncated under us)
    known_bytes: int  # bytes known to be lost (a lower bound when ``end`` is None)
    lines: int | None  # lines known to be lost, when countable
    reason: str

    def describe(self) -> str:
        span = (f"bytes {self.start}-{self.end} ({self.end - self.start} bytes)"
                if self.end is not None else
                f"bytes from {self.start} on (amount unknown; {self.known_bytes} bytes seen)")
        lines = f", {self.lines} line(s)" if self.lines is not None else ""
        return f"{self.name}: {span}{lines} lost: {self.reason}"


class Notice(NamedTuple):
    what: str  # context-lost, relocated, unreadable, overlong
    detail: str


Item = Chunk | Switch | Gap | Notice


class Reader:
    """Reads by offset from a plain file (pread) or a gzip stream (forward seeks)."""

    __slots__ = ("broken", "fd", "gz", "raw")

    def __init__(self, fd: int, compressed: bool) -> None:
        self.fd = fd
        self.gz: gzip.GzipFile | None = None
        self.raw: BinaryIO | None = None
        if compressed:
            self.raw = os.fdopen(os.dup(fd), "rb")
            self.gz = gzip.GzipFile(fileobj=self.raw, mode="rb")
        self.broken: str | None = None  # why a .gz stopped early

    def read(self, offset: int, size: int) -> bytes:
        if self.gz is None:
            return os.pread(self.fd, size, offset)
        if self.broken is not None:
            return b""
        try:
            if self.gz.tell() != offset:
                self.gz.seek(offset)
            return self.gz.read(size)
        except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt archive
            self.broken = f"{type(exc).__name__}: {exc}"
            return b""

    def head(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = self.read(len(data), size - len(data))
            if not more:
                break
            data += more
        return data

    def close(self) -> None:
        if self.gz is not None:
            with contextlib.suppress(OSError, EOFError):
                self.gz.close()
        if self.raw is not None:
            self.raw.close()
        os.close(self.fd)
