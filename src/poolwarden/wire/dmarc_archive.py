"""The containers DMARC reports arrive in (plain XML, gzip, zip), opened under hard caps.

Reporters send ``.xml``, ``.xml.gz`` or ``.zip``; anyone can send one, so every size is
enforced while bytes are produced, never taken from a header (RELIABILITY B2, ASVS 5.2.3):

* the compressed (or plain) input is refused above ``Caps.max_input``;
* decompression runs in ``Caps.chunk``-sized slices and stops as soon as the output passes
  ``Caps.max_output``: a 1 GB gzip bomb costs one slice past the cap, not a gigabyte;
* a zip must hold exactly one member (counted from the central directory before anything
  is inflated), whose name is not a path (zip slip: names are never used, and a name that
  tries to climb is refused); its declared ``file_size`` is ignored;
* the kind is chosen by magic bytes, not by the file name (parsedmarc does the same), and a
  name that claims the other compression (a zip named ``.xml.gz``) is refused;
* what comes out must be XML: a report inside an archive inside an archive is refused.

Sans-io: bytes in, chunks out; ``ReportRejected`` carries the reason.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
ZIP_EMPTY_MAGIC = b"PK\x05\x06"
MB = 1024 * 1024


class ReportRejected(ValueError):  # noqa: N818 - a verdict, not a bug
    """A report refused as a whole, with the reason stored and shown to the operator."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Caps:
    """The documented limits (docs/configuration.md ``[dmarc]``)."""

    max_input: int = 10 * MB  # a compressed report, or a plain XML file
    max_output: int = 50 * MB  # the XML after decompression
    chunk: int = 64 * 1024


DEFAULT_CAPS = Caps()


def kind_of(data: bytes) -> str:
    """``gzip``, ``zip`` or ``xml`` from the first bytes; ``unknown`` otherwise."""
    if data.startswith(GZIP_MAGIC):
        return "gzip"
    if data.startswith((ZIP_MAGIC, ZIP_EMPTY_MAGIC)):
        return "zip"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "xml"
    return "unknown"


def _claimed(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".gz", ".gzip")):
        return "gzip"
    if lower.endswith(".zip"):
        return "zip"
    return None


def open_report(data: bytes, *, name: str = "", caps: Caps = DEFAULT_CAPS) -> Iterator[bytes]:
    """The report's XML as chunks, every cap enforced while they are produced.

    The checks that need no decompression run before the first chunk is returned, so a
    caller sees ``ReportRejected`` at once for an oversized input or a many-member zip."""
    if len(data) > caps.max_input:
        raise ReportRejected(f"too large: {len(data):,} bytes over the input cap of "
                             f"{caps.max_input:,}")
    if not data.strip():
        raise ReportRejected("empty report")
    kind = kind_of(data)
    claimed = _claimed(name)
    if claimed is not None and kind in ("gzip", "zip") and claimed != kind:
        raise ReportRejected(f"named as {claimed} ({name!r}) but the content is a {kind} "
                             "archive")
    if kind == "xml":
        if len(data) > caps.max_output:
            raise ReportRejected(f"too large: {len(data):,} bytes of XML over the cap of "
                                 f"{caps.max_output:,}")
        return iter((data,))
    if kind == "gzip":
        return _checked(_gunzip(data, caps), caps)
    if kind == "zip":
        return _checked(_unzip(data, caps), caps)
    raise ReportRejected("not a DMARC report: neither XML, gzip nor zip")


def _over(caps: Caps) -> ReportRejected:
    return ReportRejected(f"too large: decompresses past the cap of {caps.max_output:,} bytes")


def _gunzip(data: bytes, caps: Caps) -> Iterator[bytes]:
    # wbits 16+MAX_WBITS: the gzip wrapper; max_length bounds each slice's output, so the
    # bomb's ratio never turns into memory
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    produced = 0
    pending = data
    while True:
        try:
            out = inflater.decompress(pending, caps.chunk)
        except zlib.error as exc:
            raise ReportRejected(f"corrupt gzip: {exc}") from exc
        pending = inflater.unconsumed_tail
        produced += len(out)
        if produced > caps.max_output:
            raise _over(caps)
        if out:
            yield out
        if inflater.eof:
            return
        if not pending and not out:
            raise ReportRejected("truncated gzip: the stream ends before its end marker")


def _unzip(data: bytes, caps: Caps) -> Iterator[bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ReportRejected(f"corrupt zip: {exc}") from exc
    members = archive.infolist()
    if len(members) != 1:
        raise ReportRejected(f"a zip must hold exactly one report, this one has "
                             f"{len(members):,} members")
    member = members[0]
    parts = member.filename.replace("\\", "/").split("/")
    if member.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise ReportRejected(f"zip member name {member.filename!r} is a path outside the "
                             "archive")
    if member.flag_bits & 0x1:
        raise ReportRejected("zip member is encrypted")
    produced = 0
    try:
        with archive.open(member) as stream:
            while True:
                out = stream.read(caps.chunk)
                if not out:
                    return
                produced += len(out)
                if produced > caps.max_output:
                    raise _over(caps)
                yield out
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise ReportRejected(f"corrupt zip member: {exc}") from exc


def _checked(chunks: Iterator[bytes], caps: Caps) -> Iterator[bytes]:
    """Refuse an archive whose content is not XML (an archive in an archive) up front."""
    first = b""
    for chunk in chunks:
        first += chunk
        if len(first) >= 8 or not chunk:
            break
    kind = kind_of(first) if first else "unknown"
    if kind in ("gzip", "zip"):
        raise ReportRejected(f"nested archive: the decompressed content is a {kind} archive")
    if kind != "xml":
        raise ReportRejected("the decompressed content is not XML")
    return _chain(first, chunks)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
