"""Suite-wide hooks: under ``CI=true`` a skip for a missing real part is a failure."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.support.real_parts import REASON_PREFIX, in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # skipif markers and pytest.skip() calls both end up here as a skipped report
    if report.skipped and in_ci() and REASON_PREFIX in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"{report.longrepr} (CI=true: the CI image must provide it)"
