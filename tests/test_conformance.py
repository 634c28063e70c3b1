"""Conformance: the shipped policies decide as the agencies' documents say.

Each case in `tests/conformance/<agency>.yaml` was read from the agency's document: one clause,
one request (URL, moment, who asks) and the decision the engine must give. The files are policy
test files (`aupgate test`, docs/policy-lifecycle.md), which `make test` also runs through the
command with `--min-coverage 100`; here the same reader and runner decide each case as its own
pytest case, named after the clause, against the real `policies/` and `categories/`, and the
tables are held to what conformance needs beyond a test file: every case states the action,
rule, clauses and window and its moment has an offset, and each agency's cases visit every
window and reach every rule, grant, action and budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aupgate.categories.cache import load_index
from aupgate.categories.index import CategoryIndex
from aupgate.lifecycle.cases import TestCase, read_test_file
from aupgate.lifecycle.testrun import coverage_of, run_cases
from aupgate.policy.loader import load_policy_dir
from aupgate.policy.model import PolicySet
from aupgate.policy.schedule import WINDOWS

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path(__file__).resolve().parent / "conformance"
POLICY_DIR = ROOT / "policies"
SOURCES = ROOT / "categories" / "sources.yaml"
AGENCIES = ("modot", "mo-dnr", "saint-paul")
_REQUIRED = ("action", "rule", "clauses", "window")


def _read(agency: str) -> list[TestCase]:
    cases, problems = read_test_file(CASES_DIR / f"{agency}.yaml")
    assert [str(p) for p in problems] == []
    return cases


CASES: list[TestCase] = [case for agency in AGENCIES for case in _read(agency)]


def _ids(cases: list[TestCase]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for case in cases:
        seen[case.name] = seen.get(case.name, 0) + 1
        ids.append(case.name if seen[case.name] == 1 else f"{case.name}-{seen[case.name]}")
    return ids


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    """The shipped policies, loaded once, as of the earliest case (the clock is pinned)."""
    return load_policy_dir(POLICY_DIR, today=min(c.at.date() for c in CASES))


@pytest.fixture(scope="session")
def category_index() -> CategoryIndex:
    """The shipped category index, loaded once (it is large)."""
    index, _report = load_index(SOURCES)
    return index


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_case(case: TestCase, policy_set: PolicySet, category_index: CategoryIndex) -> None:
    """The engine decides each document-derived case as its clause requires."""
    [outcome] = run_cases([case], policy_set, category_index)
    assert outcome.error is None
    assert outcome.decision is not None
    assert outcome.mismatches == (), f"{case.where}: {case.why}\n{outcome.decision.to_json()}"


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_case_states_the_whole_decision(case: TestCase) -> None:
    """Conformance cases pin the action, rule, clauses and window, at a moment with an offset,
    and say which clause they are read from."""
    assert [k for k in _REQUIRED if k not in case.expect] == []
    assert case.at.tzinfo is not None
    assert case.clause is not None


@pytest.mark.parametrize("agency", AGENCIES)
def test_cases_cite_known_clauses(agency: str, policy_set: PolicySet) -> None:
    """Every case pins a clause that the agency's clause map has."""
    policy = policy_set.policies[agency]
    unknown = sorted({str(c.clause) for c in CASES if c.agency == agency} - set(policy.clauses))
    assert not unknown


@pytest.mark.parametrize("agency", AGENCIES)
def test_cases_cover_every_window(agency: str) -> None:
    """Each agency's cases visit all seven windows."""
    windows = {str(c.expect["window"]) for c in CASES if c.agency == agency}
    assert windows == set(WINDOWS)


@pytest.mark.parametrize("agency", AGENCIES)
def test_cases_cover_every_action_and_rule(agency: str, policy_set: PolicySet) -> None:
    """Each agency's cases reach every rule, grant and budget and every action the policy can
    give."""
    policy = policy_set.policies[agency]
    mine = [c for c in CASES if c.agency == agency]
    actions = {rule.action for rule in policy.rules} | {policy.default.action}
    actions |= {grant.action for grant in policy.grants}
    actions |= {budget.action for budget in policy.budgets}
    if policy.allow is not None:
        actions.add("allow")
    if policy.deny is not None:
        actions.add("block")
    rules = {rule.id for rule in policy.rules} | {"default"}
    rules |= {budget.id for budget in policy.budgets}
    if policy.allow is not None:
        rules.add("allow-list")
    if policy.deny is not None:
        rules.add("deny-list")
    grants = {grant.id for grant in policy.grants}
    assert actions - {str(c.expect["action"]) for c in mine} == set()
    assert rules - {str(c.expect["rule"]) for c in mine} == set()
    assert grants - {str(c.expect.get("grant")) for c in mine} == set()


def test_the_tables_exercise_everything(policy_set: PolicySet,
                                        category_index: CategoryIndex) -> None:
    """`aupgate test --min-coverage 100` holds for the tables: every rule, list, grant, budget
    and enforced clause of the three policies is exercised."""
    coverage = coverage_of(policy_set, run_cases(CASES, policy_set, category_index))
    assert [(a.agency, [(i.kind, i.id) for i in a.missed]) for a in coverage.agencies] == [
        (agency, []) for agency in sorted(AGENCIES)
    ]
