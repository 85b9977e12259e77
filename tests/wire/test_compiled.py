"""The build under test is the one expected, and it agrees with its own source run
interpreted.

setup.py compiles the ingest's hot modules with mypyc; a machine without a C compiler runs
the same ``.py`` files interpreted. So that a failed compile never passes for a slow build:
under ``CI=true`` or ``POOLWARDEN_EXPECT_COMPILED=1`` (``scripts/test.sh``) every module of
setup.py's ``COMPILED`` list must be imported from a compiled extension; with
``POOLWARDEN_INTERPRETED=1`` (the parity subset ``scripts/test.sh`` runs next) every one
from its ``.py`` source. And the compiled modules give the interpreted source's results,
value for value, on the whole corpus and on generated logs (the interpreted side runs in
a child process)."""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.ingest.loggen import generate
from tests.support.compiled import ROOT, compiled_modules, outcomes

LOGS = ROOT.parent / "shared" / "corpus" / "postfix-logs"


def _is_compiled(name: str) -> bool:
    return not str(importlib.import_module(name).__file__).endswith(".py")


def test_the_build_imported_is_the_one_expected() -> None:
    names = compiled_modules()
    assert names, "setup.py compiles nothing"
    where = {name: importlib.import_module(name).__file__ for name in names}
    if os.environ.get("POOLWARDEN_INTERPRETED") == "1":
        assert all(str(f).endswith(".py") for f in where.values()), where
    elif os.environ.get("CI") == "true" or os.environ.get("POOLWARDEN_EXPECT_COMPILED") == "1":
        missing = {n: f for n, f in where.items() if not _is_compiled(n)}
        assert not missing, (
            f"CI expects the mypyc build (scripts/setup.sh), but these run interpreted: "
            f"{missing}; reinstall with a C compiler (pip install -e .) to compile them")
    elif not all(map(_is_compiled, names)):
        pytest.skip(f"not compiled here (no C compiler at install?): {where}")


def _lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(LOGS.glob("*.log")) if LOGS.is_dir() else []:
        lines += path.read_text(encoding="utf-8", errors="replace").split("\n")
    log = generate(5, 600)
    lines += [line.rstrip("\n") for line in log.lines]
    lines += [line.rstrip("\n") for line in generate(6, 300, fmt="iso").lines]
    lines += [line + "\r" for line in lines[:2000]]  # CRLF ends
    return lines


def test_compiled_and_interpreted_give_the_same_values() -> None:
    if not all(map(_is_compiled, compiled_modules())):
        pytest.skip("nothing compiled to compare with")
    lines = _lines()
    code = ("import pickle, sys\n"
            "from tests.support.compiled import outcomes, prefer_source\n"
            "prefer_source()\n"
            "lines = pickle.load(sys.stdin.buffer)\n"
            "pickle.dump(outcomes(lines), sys.stdout.buffer)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(lines),
                           capture_output=True, check=True, env=env, cwd=str(ROOT))
    interpreted = pickle.loads(child.stdout)
    compiled = outcomes(lines)
    assert len(compiled) == len(interpreted)
    for i, (got, want) in enumerate(zip(compiled, interpreted, strict=True)):
        assert got == want, f"outcome {i} differs"
    deliveries = [x for x in compiled if isinstance(x, list)]
    assert sum(map(len, deliveries)) > 1000  # the comparison covered real work


def test_the_interpreted_hook_is_not_left_on() -> None:
    assert Path(str(importlib.import_module(compiled_modules()[0]).__file__)).exists()
