"""`aupgate test`: policy test files on real files, failures located, coverage, --min-coverage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aupgate.cli import main
from aupgate.lifecycle.cases import read_test_file

FIXTURES = Path(__file__).parent / "fixtures"
POLICIES = FIXTURES / "lifecycle" / "policies"
CATEGORIES = FIXTURES / "core" / "categories" / "sources.yaml"

PASSING = """\
agency: lab
at: "2026-11-24T12:15:00-06:00"
cases:
  - clause: gambling
    url: https://www.bet365.com/
    expect: {action: block, rule: gambling, clauses: [gambling], window: lunch}
  - clause: gambling
    why: The auditors' grant relaxes the gambling rule.
    url: https://bet365.com/odds
    user: Audrey
    expect: {action: log, rule: gambling, grant: audit-gambling, step: grant}
  - url: https://www.facebook.com/
    at: "2026-11-24T09:30"
    expect: {action: warn, rule: social-work, window: work}
  - url: https://www.facebook.com/
    expect: {action: allow, rule: social-personal, clauses: [social, personal]}
  - clause: personal
    why: Two minutes of personal use already today, and this is a third.
    url: https://www.facebook.com/
    budget_used: 2
    expect: {action: block, rule: personal-minutes, step: budget, clauses: [personal]}
  - url: https://pandora.com/
    expect: {action: log, rule: radio}
  - url: https://docs.example/
    client: 10.50.3.4
    expect: {action: allow, rule: default, device: state, network: office}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["test", *args, "--policy-dir", str(POLICIES), "--categories", str(CATEGORIES)])
    out, _err = capsys.readouterr()
    return code, out


def test_every_case_passes_and_everything_is_covered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(PASSING, encoding="utf-8")
    code, out = run(capsys, str(path), "--min-coverage", "100")
    assert code == 0, out
    assert "7 case(s): 7 passed, 0 failed" in out
    assert "coverage: 100.00%" in out


def test_a_failing_case_is_located_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = PASSING.replace("expect: {action: log, rule: radio}",
                           "expect: {action: block, rule: radio}  # wrong")
    path = tmp_path / "lab.yaml"
    path.write_text(text, encoding="utf-8")
    code, out = run(capsys, str(path))
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "pandora" in t)
    assert code == 1
    assert f"FAIL  {path}:{line}: lab-case5-radio: https://pandora.com/ at " in out
    assert "      action: expected 'block', got 'log'" in out
    assert "7 case(s): 6 passed, 1 failed" in out


def test_coverage_names_what_no_case_exercised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = PASSING.split("  - clause: personal")[0]  # no budget, radio or default cases
    path = tmp_path / "lab.yaml"
    path.write_text(text, encoding="utf-8")
    code, out = run(capsys, str(path), "--min-coverage", "90")
    assert code == 1
    assert "    rule radio (line " in out
    assert "    rule default\n" in out
    assert "    budget personal-minutes (line " in out
    assert "    clause radio\n" in out
    assert "is below --min-coverage 90%" in out
    code, out = run(capsys, str(path), "--min-coverage", "50")
    assert code == 0, out


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(PASSING, encoding="utf-8")
    code, out = run(capsys, str(path), "--json")
    document = json.loads(out)
    assert code == 0
    assert (document["cases"], document["passed"], document["failed"]) == (7, 7, 0)
    assert document["coverage"]["percent"] == 100.0
    [lab] = document["coverage"]["agencies"]
    assert lab["by_kind"]["budget"] == {"total": 1, "exercised": 1}
    assert document["results"][1]["decision"]["grant"] == "audit-gambling"


@pytest.mark.parametrize(
    ("key", "bad", "field", "message"),
    [
        ("url", "    url: 'http://exa mple.com/'  # <-\n", "cases[0].url", "invalid host"),
        ("budget_used", "    budget_used: -1  # <-\n", "cases[0].budget_used",
         "expected a whole number"),
        ("content", "    content: [exe]  # <-\n", "cases[0].content[0]",
         "unknown content kind 'exe'"),
        ("expect", "    expect: {action: deny}  # <-\n", "cases[0].expect.action",
         "unknown action 'deny' (one of: allow, log, warn, block)"),
        ("at", "    at: tomorrow  # <-\n", "cases[0].at", "'tomorrow' is not an ISO-8601 time"),
        ("expect", "    expct: {action: block}  # <-\n", "cases[0].expct",
         "unknown key (did you mean 'expect'?)"),
    ],
)
def test_a_broken_case_names_file_line_and_field(
    tmp_path: Path, key: str, bad: str, field: str, message: str
) -> None:
    text = ("agency: lab\nat: '2026-11-24T12:15'\ncases:\n  - clause: gambling\n"
            "    url: https://www.bet365.com/\n    expect: {action: block}\n")
    path = tmp_path / "ok.yaml"
    path.write_text(text, encoding="utf-8")
    assert read_test_file(path)[1] == []
    lines = [line for line in text.splitlines(keepends=True)
             if not line.strip().startswith(key + ":")]
    text = "".join(lines) + bad
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    cases, problems = read_test_file(path)
    line = len(text.splitlines())
    assert cases == []
    found = [str(p) for p in problems if "missing required key" not in p.message]
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{line}: {field}: {message}")


def test_problems_in_a_file_fail_the_run(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(PASSING, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("agency: lab\ncases:\n  - url: https://x.example/\n    expect: {}\n",
                   encoding="utf-8")
    code, out = run(capsys, str(tmp_path))
    assert code == 1
    assert f"ERROR {bad}:4: cases[0].expect: missing required key 'action'" in out
    assert f"ERROR {bad}:3: cases[0].at: no moment" in out


def test_the_default_folder_is_the_policy_dirs_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    (policies / "tests").mkdir(parents=True)
    (policies / "lab.yaml").write_bytes((POLICIES / "lab.yaml").read_bytes())
    (policies / "tests" / "lab.yaml").write_text(PASSING, encoding="utf-8")
    code = main(["test", "--policy-dir", str(policies), "--categories", str(CATEGORIES)])
    assert code == 0
    assert "7 case(s): 7 passed" in capsys.readouterr().out
    code = main(["test", "--policy-dir", str(tmp_path / "none"), "--categories",
                 str(CATEGORIES)])
    assert code == 2


def test_an_unknown_agency_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(PASSING.replace("agency: lab", "agency: labb"), encoding="utf-8")
    code, out = run(capsys, str(path))
    assert code == 1
    assert "unknown agency 'labb' (known: lab)" in out
