"""A real Knot DNS on loopback serving the monitors' test zones, one per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.feedback import knot as knot_support
from tests.services.monitors.zones import blocklist_records, missing, mx_records


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[knot_support.KnotServer]:
    if knot_support.KNOTD is None:
        missing("knotd is not installed (scripts/setup.sh installs knot)")
    workdir: Path = tmp_path_factory.mktemp("knot")
    with knot_support.knot(workdir, blocklist_records() + mx_records()) as server:
        yield server


@pytest.fixture
def knot_own(tmp_path: Path) -> Iterator[knot_support.KnotServer]:
    """A Knot of this test's own, for tests that change the zone (listings come and go)."""
    if knot_support.KNOTD is None:
        missing("knotd is not installed (scripts/setup.sh installs knot)")
    with knot_support.knot(tmp_path / "knot", blocklist_records() + mx_records()) as server:
        yield server
