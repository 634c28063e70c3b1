"""`aupgate test [FILES]`: policy test files, decided at their pinned moments, with coverage.

The model is `opa test --coverage --threshold`: every case is decided, every failure is printed
with its file and line, and the report names each rule, grant, budget and clause no case
exercised. Exit 0 when every case passed (and coverage reached `--min-coverage`), 1 otherwise,
2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from aupgate.errors import Problem
from aupgate.lifecycle.cases import TestCase, read_test_file
from aupgate.lifecycle.testrun import Coverage, Outcome, coverage_of, run_cases
from aupgate.paths import default_policy_dir

from .common import UsageError, add_categories_option, add_policy_dir_option, load_index_of
from .common import load_policies as load_policy_set

__all__ = ["add_test_parser"]

_HELP = "decide policy test files at their pinned moments; exit 1 on any failure"


def add_test_parser(sub: Any) -> None:
    parser = sub.add_parser("test", help=_HELP, description=__doc__)
    parser.add_argument(
        "files", nargs="*", type=Path, metavar="FILE",
        help="test files or folders of them (*.yaml); default: POLICY_DIR/tests/",
    )
    add_policy_dir_option(parser)
    add_categories_option(parser)
    parser.add_argument(
        "--min-coverage", type=float, metavar="PERCENT", default=None,
        help="exit 1 when fewer than this percentage of rules, lists, grants, budgets and "
             "enforced clauses were exercised",
    )
    parser.add_argument("--json", action="store_true", help="print results and coverage as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.set_defaults(func=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    if args.min_coverage is not None and not 0 <= args.min_coverage <= 100:
        raise UsageError("--min-coverage is a percentage, 0 to 100")
    files = _test_files(args.files, args.policy_dir or default_policy_dir())
    cases: list[TestCase] = []
    problems: list[Problem] = []
    for path in files:
        found, trouble = read_test_file(path)
        cases += found
        problems += trouble
    today = min((case.at.date() for case in cases), default=None)
    if today is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise UsageError("no test cases found in " + ", ".join(str(f) for f in files))
    policies = load_policy_set(args, today, warnings=False)
    outcomes = run_cases(cases, policies, load_index_of(args))
    coverage = coverage_of(policies, outcomes)
    failed = [o for o in outcomes if not o.passed]
    below = args.min_coverage is not None and coverage.percent < args.min_coverage
    if args.json:
        _print_json(sys.stdout, outcomes, problems, coverage, args.min_coverage)
    else:
        _print_text(sys.stdout, outcomes, problems, coverage, args.verbose)
        if below:
            print(f"coverage {coverage.percent:.2f}% is below --min-coverage "
                  f"{args.min_coverage:g}%")
    return 1 if failed or problems or below else 0


def _test_files(given: list[Path], policy_dir: Path) -> list[Path]:
    paths = given or [policy_dir / "tests"]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        raise UsageError("no test files (*.yaml) in " + ", ".join(str(p) for p in paths))
    return files


def _print_text(out: TextIO, outcomes: list[Outcome], problems: list[Problem],
                coverage: Coverage, verbose: bool) -> None:
    for problem in problems:
        out.write(f"ERROR {problem}\n")
    for outcome in outcomes:
        case = outcome.case
        if outcome.passed:
            if verbose:
                out.write(f"PASS  {case.where}: {case.name}\n")
            continue
        out.write(f"FAIL  {case.where}: {case.name}: {case.raw_url} at {case.at.isoformat()}\n")
        if case.why:
            out.write(f"      why: {case.why}\n")
        if outcome.error is not None:
            out.write(f"      {outcome.error}\n")
        for key, want, got in outcome.mismatches:
            out.write(f"      {key}: expected {want!r}, got {got!r}\n")
        if outcome.decision is not None and outcome.mismatches:
            d = outcome.decision
            out.write(f"      decided: {d.action} by {d.step} '{d.rule}' "
                      f"[{', '.join(d.clauses)}] in {d.window}\n")
    passed = sum(o.passed for o in outcomes)
    out.write(f"{len(outcomes)} case(s): {passed} passed, {len(outcomes) - passed} failed"
              + (f", {len(problems)} problem(s) in test files" if problems else "") + "\n")
    out.write(f"coverage: {coverage.percent:.2f}% ({coverage.exercised} of {coverage.total} "
              "rules, lists, grants, budgets and enforced clauses exercised)\n")
    for agency in coverage.agencies:
        missed = agency.missed
        share = agency.to_json()["percent"]
        out.write(f"  {agency.agency} ({agency.source}): {share:.2f}%"
                  + (", not exercised:" if missed else "") + "\n")
        for item in missed:
            where = f" (line {item.line})" if item.line else ""
            out.write(f"    {item.kind} {item.id}{where}\n")


def _print_json(out: TextIO, outcomes: list[Outcome], problems: list[Problem],
                coverage: Coverage, minimum: float | None) -> None:
    results = [
        {
            "file": o.case.file,
            "line": o.case.line,
            "name": o.case.name,
            "passed": o.passed,
            "error": o.error,
            "mismatches": [{"field": k, "expected": w, "got": g} for k, w, g in o.mismatches],
            "decision": o.decision.to_json() if o.decision is not None else None,
        }
        for o in outcomes
    ]
    document = {
        "cases": len(outcomes),
        "passed": sum(o.passed for o in outcomes),
        "failed": sum(not o.passed for o in outcomes),
        "problems": [str(p) for p in problems],
        "min_coverage": minimum,
        "coverage": coverage.to_json(),
        "results": results,
    }
    out.write(json.dumps(document, indent=2) + "\n")
