"""The whole suite's setup and hooks.

* With ``POOLWARDEN_INTERPRETED=1``, the modules setup.py compiles with mypyc are imported
  from their ``.py`` source instead (``scripts/test.sh`` runs a parity subset so, next to
  the suite on the compiled build).
* Under ``CI=true`` a skip for a missing real part (root, Postfix, Chromium, Knot …) is a
  failure.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from tests.support.compiled import prefer_source
from tests.support.real_parts import REASON_PREFIX, in_ci

if os.environ.get("POOLWARDEN_INTERPRETED") == "1":
    prefer_source()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # skipif markers and pytest.skip() calls both end up here as a skipped report
    if report.skipped and in_ci() and REASON_PREFIX in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"{report.longrepr} (CI=true: the CI image must provide it)"
