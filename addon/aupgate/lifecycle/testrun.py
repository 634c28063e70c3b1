"""Running policy test cases, and what they covered.

A case passes when every field its `expect` names equals the decision's. Coverage is what the
cases' decisions exercised, per agency: each rule (deciding, or relaxed by a grant on the way),
the allow and deny lists, the default, each grant and each budget; and each clause the document
has that the proxy enforces (a clause marked `not_enforceable` cannot be exercised and is not
counted). The model is `opa test --coverage`: the figure is exercised items over all items, and
the report names every item no case reached, with its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aupgate.budgets import apply_budget
from aupgate.categories.index import CategoryIndex
from aupgate.engine import Decision, Facts, decide, decide_content
from aupgate.policy.model import Policy, PolicySet
from aupgate.uploads import request_body

from .cases import TestCase

__all__ = ["Coverage", "Outcome", "coverage_of", "decide_case", "run_cases"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One case's result: the decision, and each expected field it got wrong."""

    case: TestCase
    decision: Decision | None
    mismatches: tuple[tuple[str, Any, Any], ...]  # (field, expected, got)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.mismatches


def decide_case(case: TestCase, policy: Policy, index: CategoryIndex) -> Decision:
    """The decision the proxy would give the case's request at the case's moment."""
    url = case.url
    facts = Facts(url=url, user=case.user, client=case.client, device=case.device,
                  method=case.method)
    if case.body is not None:  # what the proxy works out at requestheaders from the headers
        body = request_body(
            method=case.method, content_length=str(case.body.get("length", 1024)),
            transfer_encoding=None, multiplexed=False, content_type=case.body.get("type"),
            disposition=case.body.get("disposition"), path=url.path, query=url.query,
            limit_bytes=policy.transfer_limit_bytes)
        facts = replace(facts, sends_body=body.sends_body, kinds=body.kinds)
    decision = decide(policy, index, facts, case.at)
    if case.content:
        found = decide_content(policy, index, facts, case.content, case.at)
        if found is not None:
            decision = found
    if case.budget_used is not None:
        decision = apply_budget(policy, decision, case.budget_used, new_minute=True)
    return decision


def run_cases(cases: Iterable[TestCase], policies: PolicySet,
              index: CategoryIndex) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for case in cases:
        policy = policies.policies.get(case.agency)
        if policy is None:
            known = ", ".join(sorted(policies.policies))
            outcomes.append(Outcome(case, None, (), f"unknown agency '{case.agency}' "
                                                    f"(known: {known})"))
            continue
        if case.clause is not None and case.clause not in policy.clauses:
            outcomes.append(Outcome(case, None, (), f"clause '{case.clause}' is not in "
                                                    f"{case.agency}'s clause map"))
            continue
        decision = decide_case(case, policy, index)
        got = decision.to_json()
        if "rewrites" in case.expect:
            got["rewrites"] = _rewrites(policy, case)
        mismatches = tuple(
            (key, want, got[key]) for key, want in case.expect.items() if got[key] != want
        )
        outcomes.append(Outcome(case, decision, mismatches))
    return outcomes


def _rewrites(policy: Policy, case: TestCase) -> dict[str, Any]:
    """What the proxy adds to the case's request when it lets it through."""
    url = case.url
    rewrite = policy.controls.rewrite(url.host, url.path, url.query)
    return {"controls": list(rewrite.controls) if rewrite else [],
            "headers": dict(rewrite.headers) if rewrite else {},
            "query": rewrite.query if rewrite else None}


# --------------------------------------------------------------------------- coverage


@dataclass(frozen=True, slots=True)
class Item:
    """Something a test can exercise: a rule, list, default, grant, budget, or clause."""

    kind: str  # rule | grant | budget | clause
    id: str
    line: int | None = None


@dataclass(slots=True)
class AgencyCoverage:
    agency: str
    source: str
    items: list[Item] = field(default_factory=list)
    exercised: set[tuple[str, str]] = field(default_factory=set)

    @property
    def missed(self) -> list[Item]:
        return [i for i in self.items if (i.kind, i.id) not in self.exercised]

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, dict[str, int]] = {}
        for item in self.items:
            entry = counts.setdefault(item.kind, {"total": 0, "exercised": 0})
            entry["total"] += 1
            entry["exercised"] += (item.kind, item.id) in self.exercised
        return {
            "agency": self.agency,
            "file": self.source,
            "items": len(self.items),
            "exercised": len(self.items) - len(self.missed),
            "percent": _percent(len(self.items) - len(self.missed), len(self.items)),
            "by_kind": counts,
            "not_exercised": [
                {"kind": i.kind, "id": i.id, "line": i.line} for i in self.missed
            ],
        }


@dataclass(slots=True)
class Coverage:
    agencies: list[AgencyCoverage]

    @property
    def total(self) -> int:
        return sum(len(a.items) for a in self.agencies)

    @property
    def exercised(self) -> int:
        return sum(len(a.items) - len(a.missed) for a in self.agencies)

    @property
    def percent(self) -> float:
        return _percent(self.exercised, self.total)

    def to_json(self) -> dict[str, Any]:
        return {"percent": self.percent, "items": self.total, "exercised": self.exercised,
                "agencies": [a.to_json() for a in self.agencies]}


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 100.0


def coverage_of(policies: PolicySet, outcomes: Sequence[Outcome]) -> Coverage:
    """What the outcomes' decisions exercised, agency by agency (all agencies in the set)."""
    agencies: list[AgencyCoverage] = []
    by_agency: dict[str, AgencyCoverage] = {}
    for name, policy in sorted(policies.policies.items()):
        agency = AgencyCoverage(name, policy.source, _items(policy))
        agencies.append(agency)
        by_agency[name] = agency
    for outcome in outcomes:
        decision = outcome.decision
        found = by_agency.get(outcome.case.agency)
        if decision is None or found is None:
            continue
        seen = found.exercised
        kind = "budget" if decision.step == "budget" else "rule"
        seen.add((kind, decision.rule))
        if decision.grant is not None:
            seen.add(("grant", decision.grant))
        for rule, grant in decision.relaxed:
            seen.add(("rule", rule))
            seen.add(("grant", grant))
        for clause in decision.clauses:
            seen.add(("clause", clause))
    return Coverage(agencies)


def _items(policy: Policy) -> list[Item]:
    items = [Item("rule", rule.id, rule.line) for rule in policy.rules]
    if policy.deny is not None:
        items.append(Item("rule", "deny-list"))
    if policy.allow is not None:
        items.append(Item("rule", "allow-list"))
    items.append(Item("rule", "default"))
    items += [Item("grant", grant.id) for grant in policy.grants]
    items += [Item("budget", budget.id, budget.line) for budget in policy.budgets]
    items += [Item("clause", clause.id) for clause in policy.clauses.values()
              if not clause.not_enforceable]
    return items
