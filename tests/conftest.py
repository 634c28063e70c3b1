"""Suite-wide rules.

Markers by folder: every test under tests/e2e/ is `e2e`, every test under tests/deploy/ is
`deploy` (pyproject.toml registers them, with `slow`); `make test-fast` leaves all three out.

On a developer's machine a test whose tool is missing (chromium, haproxy, jsonschema, the shared
data folder) skips with a message saying how to install it. In CI (`CI=true`, set by the CI
runner) `.ci/run` installs every such tool, so a skip there means the test silently did not run:
it is turned into a failure instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_FOLDER_MARKS = {"e2e": "e2e", "deploy": "deploy"}  # tests/<folder>/ -> marker
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = item.path.relative_to(_TESTS) if item.path.is_relative_to(_TESTS) else None
        if relative is not None and relative.parts[0] in _FOLDER_MARKS:
            item.add_marker(getattr(pytest.mark, _FOLDER_MARKS[relative.parts[0]]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where .ci/run provides every tool: {reason}"
