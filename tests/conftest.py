"""Suite-wide rules.

On a developer's machine a test whose tool is missing (chromium, haproxy, jsonschema, the shared
data folder) skips with a message saying how to install it. In CI (`CI=true`, set by the CI
runner) `.ci/run` installs every such tool, so a skip there means the test silently did not run:
it is turned into a failure instead.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where .ci/run provides every tool: {reason}"
