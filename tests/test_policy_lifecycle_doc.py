"""The policy test file docs/policy-lifecycle.md shows passes against the lifecycle fixture policy
and fails against its candidate, as the walk-through says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aupgate.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "policy-lifecycle.md"
LIFECYCLE = ROOT / "tests" / "fixtures" / "lifecycle"
CATEGORIES = ROOT / "tests" / "fixtures" / "core" / "categories" / "sources.yaml"


@pytest.mark.parametrize(("policies", "code"), [("policies", 0), ("candidate", 1)])
def test_the_documented_test_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  policies: str, code: int) -> None:
    section = DOC.read_text(encoding="utf-8").split("## 1. Test", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    cases = tmp_path / "lab.yaml"
    cases.write_text(block.group(1), encoding="utf-8")
    got = main(["test", str(cases), "--policy-dir", str(LIFECYCLE / policies), "--categories",
                str(CATEGORIES)])
    out = capsys.readouterr().out
    assert got == code, out
    assert "4 case(s)" in out
