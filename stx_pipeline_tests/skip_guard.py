"""No test may skip for something missing, except the system browser.

A skipped test did not run, and a suite that skips for a sample, a tool or a module
that "may be absent" passes on a checkout that cannot test what it claims (issue 15:
13 tests skipped on any machine but the one whose folder held the samples). So every
skip is turned into a failure that names its reason, unless the reason is expected
below. Hooks are re-exported by conftest.py; `test_skip_guard.py` runs them against
real pytest runs.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

# The only expected skip: the dashboard's browser tests need the system Chromium, which
# `make test` installs (`make browser`) and without which they fail under CI.
EXPECTED_SKIP_REASONS = ("(run `make browser`)",)


def _fail_unexpected_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if any(expected in reason for expected in EXPECTED_SKIP_REASONS):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped ({reason.removeprefix('Skipped: ')}), but this suite allows no skip except "
        "the browser's (stx_pipeline_tests/skip_guard.py): put what the test needs in the "
        "repository, or let the test fail"
    )


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module skipped at import (`pytest.skip(..., allow_module_level=True)`)."""
    report = yield
    _fail_unexpected_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test skipped by a `skipif` mark, a fixture or its own body."""
    report = yield
    _fail_unexpected_skip(report)
    return report
