"""Under CI=true a test whose real part is missing fails; locally it skips with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = '''
import pytest
from tests.support.real_parts import REASON_PREFIX, missing

def test_call():
    missing("postfix is not installed")

@pytest.mark.skipif(True, reason=REASON_PREFIX + "chromium is not installed")
def test_marker():
    pass

@pytest.mark.skipif(True, reason="not a real part: always a skip")
def test_other():
    pass
'''


# in CI the marker's skip happens at setup, so pytest reports it as an error: red either way
@pytest.mark.parametrize(("ci", "expected"), [("true", "1 failed, 1 skipped, 1 error"),
                                              ("", "3 skipped")])
def test_missing_real_parts_fail_only_in_ci(tmp_path: Path, ci: str, expected: str) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(  # the suite's hook, as the suite's conftest has it
        "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n",
        encoding="utf-8")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore", str(tmp_path / "test_probe.py")], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert expected in done.stdout, done.stdout + done.stderr
    assert (done.returncode != 0) == bool(ci)
    if ci:
        assert "postfix is not installed" in done.stdout
        assert "chromium is not installed" in done.stdout
