"""The rotated copies of a followed log beside it: ``mail.log.1``, ``mail.log-20261123``,
``mail.log.20261123.gz`` (names that start with the log's name and ``.`` or ``-``).

``rotated_files(directory, base)`` lists them, plain or gzip, newest first and plain before
gzip; other compressions (.bz2, .xz, .zst …) are left out, since they cannot be read.
``RotatedFile.head(n)`` reads (and keeps) the first ``n`` bytes of the decompressed content,
which the tailer matches against a checkpoint's fingerprint. Reads only; writes nothing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from poolwarden.adapters.logfiles import Reader

_UNREADABLE = (".bz2", ".xz", ".zst", ".lz4", ".z", ".zip", ".tmp")


@dataclass(slots=True)
class RotatedFile:
    """One rotated copy, as found on disk."""

    name: str
    device: int
    inode: int
    size: int
    mtime: float
    compressed: bool
    heads: dict[int, bytes] = field(default_factory=dict)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of the content (fewer if it is shorter; b"" if gone)."""
        head = self.heads.get(size)
        if head is None:
            try:
                fd = os.open(self.name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return b""
            reader = Reader(fd, self.compressed)
            try:
                head = reader.head(size)
            finally:
                reader.close()
            self.heads[size] = head
        return head


def rotated_files(directory: str, base: str) -> list[RotatedFile]:
    """Rotated files of ``base`` in ``directory``: newest first, plain before gzip."""
    found: list[RotatedFile] = []
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return found
    for name in names:
        if name == base or not name.startswith(base) or name[len(base)] not in ".-":
            continue
        lower = name.lower()
        if lower.endswith(_UNREADABLE):
            continue
        full = os.path.join(directory, name)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append(RotatedFile(full, st.st_dev, st.st_ino, st.st_size, st.st_mtime,
                                     lower.endswith(".gz")))
    found.sort(key=lambda c: (c.compressed, -c.mtime, c.name))
    return found
