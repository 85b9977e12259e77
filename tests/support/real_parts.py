"""A test whose real part (root, Postfix, iproute2, Chromium, knot, PostgreSQL) is missing.

Locally it skips with the reason; under ``CI=true`` it fails, so a CI image that
installed less than it should cannot go green on skipped tests. Every such skip
goes through ``missing`` (or uses ``REASON_PREFIX`` in a ``skipif`` reason): the
hook in ``tests/conftest.py`` turns those skips into failures in CI.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REASON_PREFIX = "real part missing: "


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Skip (locally) or fail (CI) a test whose real part is not installed."""
    if in_ci():
        pytest.fail(REASON_PREFIX + reason + " (CI=true: the CI image must provide it)",
                    pytrace=False)
    pytest.skip(REASON_PREFIX + reason)
