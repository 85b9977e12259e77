"""Find the line of a key in TOML text, so configuration errors can name it.

tomllib gives no positions, so this scans lines: ``[table]`` and ``[[array]]``
headers (counting array items to map an index), and ``key =`` lines with bare,
dotted or quoted keys. A path that is not found falls back to its nearest
enclosing key or header. Pure text in, line numbers out; never parses values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[str | int, ...]

_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEY = rf"{_PART}(?:\s*\.\s*{_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_KEY})\s*\]\]\s*(?:#.*)?")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_KEY})\s*\]\s*(?:#.*)?")
_KEY_LINE = re.compile(rf"\s*({_KEY})\s*=")
_SPLIT = re.compile(rf"\s*({_PART})\s*(?:\.|$)")


def _parts(key: str) -> list[str]:
    return [p[1:-1] if p[0] in "\"'" else p for p in _SPLIT.findall(key)]


def index_lines(text: str) -> dict[Path, int]:
    """Map every table, array item and key path found in ``text`` to its first 1-based line."""
    index: dict[Path, int] = {}
    counts: dict[Path, int] = {}  # array-of-tables path -> items seen so far
    current: Path = ()
    in_string: str | None = None  # the delimiter of an open multi-line string

    def concrete(names: list[str]) -> Path:
        out: list[str | int] = []
        for name in names:
            out.append(name)
            if tuple(out) in counts:
                out.append(counts[tuple(out)] - 1)
        return tuple(out)

    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        if match := _ARRAY_HEADER.fullmatch(line):
            *parent, name = _parts(match.group(1))
            array = (*concrete(parent), name)
            counts[array] = counts.get(array, 0) + 1
            index.setdefault(array, number)
            current = (*array, counts[array] - 1)
            index.setdefault(current, number)
        elif match := _TABLE_HEADER.fullmatch(line):
            current = concrete(_parts(match.group(1)))
            index.setdefault(current, number)
        elif match := _KEY_LINE.match(line):
            index.setdefault((*current, *_parts(match.group(1))), number)
            rest = line[match.end():]
            for delimiter in ('"""', "'''"):
                if rest.count(delimiter) % 2 == 1:
                    in_string = delimiter
    return index


def line_for(index: dict[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, else of its nearest enclosing key or header, else None."""
    key = tuple(path)
    while key:
        if key in index:
            return index[key]
        key = key[:-1]
    return None


def locate(text: str, path: Sequence[str | int]) -> int | None:
    """The 1-based line where ``path`` (e.g. ``("tenants", 3, "plan")``) appears in ``text``."""
    return line_for(index_lines(text), path)
