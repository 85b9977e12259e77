"""A private copy of the example configuration per test, so each test has its own SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    target = tmp_path / "poolwarden.toml"
    shutil.copy(EXAMPLE, target)
    return target
