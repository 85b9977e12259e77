"""Which of poolwarden's modules setup.py compiles with mypyc, and an import hook that loads
them from their ``.py`` source instead (the interpreted half of the parity tests)."""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def compiled_modules() -> list[str]:
    """The dotted names of the modules in setup.py's ``COMPILED`` list (read, not run)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            paths = ast.literal_eval(node.value)
            return [p.removeprefix("src/").removesuffix(".py").replace("/", ".")
                    for p in paths]
    raise AssertionError("setup.py has no COMPILED list")


class _SourceFirst(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for entry in path or sys.path:
            source = Path(entry) / (fullname.rpartition(".")[2] + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def prefer_source() -> None:
    """Import the compiled modules from their ``.py`` files from now on (call it before
    anything imports them)."""
    names = compiled_modules()
    loaded = [name for name in names if name in sys.modules]
    assert not loaded, f"imported before the hook: {loaded}"
    sys.meta_path.insert(0, _SourceFirst(names))


def outcomes(lines: Sequence[str]) -> list[object]:
    """What the compiled modules make of ``lines``, as plain values: each line's record
    (kind, fields, header values) and the deliveries with their keys, both from the line
    API and from the chunk loop."""
    from poolwarden.wire.postfix_correlate import Correlator, Delivery
    from poolwarden.wire.postfix_log import LogParser

    out: list[object] = []
    for year, reference in ((2026, None), (None, 1_600_000_000.0)):
        parser = LogParser(year=year, reference=reference)
        for line in lines:
            record = parser.parse(line)
            out.append(None if record is None else (
                record.timestamp, record.host, record.program, record.pid, record.queue_id,
                record.message, record.kind, record.fields))
        for chunked in (False, True):
            correlator, parser = Correlator(), LogParser(year=year, reference=reference)
            deliveries: list[Delivery] = []
            if chunked:
                correlator.feed_chunk(parser, "".join(f"{line}\n" for line in lines).encode(),
                                      deliveries)
            else:
                correlator.feed_lines(parser, lines, deliveries)
            out.append([(tuple(d[:12]), tuple(d.message), tuple(d[13:]), d.key)
                        for d in deliveries])
            out.append((correlator.pending, correlator.evicted, correlator.superseded))
    return out
