"""Conformance: the shipped policies decide as the agencies' documents say.

Each case in `tests/conformance/<agency>.yaml` was read from the agency's document: one clause,
one request (URL, moment, who asks) and the decision the engine must give. The cases run against
the real `policies/` directory and the real category index in `categories/`, so a change to a
policy, a list or the engine that breaks a document's meaning fails here, named after the clause.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from aupgate.categories.cache import load_index
from aupgate.categories.index import CategoryIndex
from aupgate.engine import Decision, Facts, decide, decide_content
from aupgate.normalise import parse_url
from aupgate.policy.loader import load_policy_dir
from aupgate.policy.model import Policy, PolicySet
from aupgate.policy.schedule import WINDOWS
from aupgate.uploads import request_body

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path(__file__).resolve().parent / "conformance"
POLICY_DIR = ROOT / "policies"
SOURCES = ROOT / "categories" / "sources.yaml"
AGENCIES = ("modot", "mo-dnr", "saint-paul")
# Grants are checked against each case's own date; `today` only decides which expired grants
# the loader warns about, so a fixed day keeps the run independent of the calendar.
LOAD_DAY = date(2026, 11, 24)

_CASE_KEYS = frozenset({"clause", "why", "url", "at", "device", "user", "client", "content",
                        "method", "body", "expect"})
_BODY_KEYS = frozenset({"length", "type", "disposition"})
_EXPECT_REQUIRED = ("action", "rule", "clauses", "window")
_EXPECT_KEYS = frozenset(
    {*_EXPECT_REQUIRED, "categories", "grant", "device", "network", "intercept", "direction",
     "rewrites"}
)


@dataclass(frozen=True, slots=True)
class Case:
    """One request read from a document, and the decision the document requires."""

    agency: str
    id: str
    clause: str
    why: str
    url: str
    at: datetime
    device: str | None
    user: str | None
    client: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    content: frozenset[str]
    method: str
    body: Mapping[str, Any] | None  # the request body's headers: length, type, disposition
    expect: Mapping[str, Any]


def _read_cases(agency: str) -> list[Case]:
    """The cases of one agency's file, with ids like `modot-7.E-gambling-lunch`."""
    path = CASES_DIR / f"{agency}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of cases")
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"{path.name}[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping")
        if unknown := set(item) - _CASE_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        expect = item["expect"]
        if not isinstance(expect, dict):
            raise ValueError(f"{where}: expect must be a mapping")
        if unknown := set(expect) - _EXPECT_KEYS:
            raise ValueError(f"{where}: unknown expect keys {sorted(unknown)}")
        body = item.get("body")
        if body is not None and (not isinstance(body, dict) or set(body) - _BODY_KEYS):
            raise ValueError(f"{where}: body is a mapping of {sorted(_BODY_KEYS)}")
        if missing := [k for k in _EXPECT_REQUIRED if k not in expect]:
            raise ValueError(f"{where}: expect lacks {missing}")
        at = datetime.fromisoformat(str(item["at"]))
        if at.tzinfo is None:
            raise ValueError(f"{where}: 'at' needs a UTC offset, e.g. -06:00")
        clause = str(item["clause"])
        base = f"{agency}-{clause}-{expect['rule']}-{expect['window']}"
        seen[base] = seen.get(base, 0) + 1
        case_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        client = item.get("client")
        cases.append(
            Case(
                agency=agency,
                id=case_id,
                clause=clause,
                why=str(item["why"]),
                url=str(item["url"]),
                at=at,
                device=item.get("device"),
                user=item.get("user"),
                client=ipaddress.ip_address(client) if client is not None else None,
                content=frozenset(item.get("content") or ()),
                method=str(item.get("method", "POST" if body is not None else "GET")),
                body=body,
                expect=expect,
            )
        )
    return cases


CASES: list[Case] = [case for agency in AGENCIES for case in _read_cases(agency)]


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    """The shipped policies, loaded once."""
    return load_policy_dir(POLICY_DIR, today=LOAD_DAY)


@pytest.fixture(scope="session")
def category_index() -> CategoryIndex:
    """The shipped category index, loaded once (it is large)."""
    index, _report = load_index(SOURCES)
    return index


def _decide(case: Case, policy: Policy, index: CategoryIndex) -> Decision:
    url = parse_url(case.url)
    facts = Facts(url=url, user=case.user, client=case.client, device=case.device,
                  method=case.method)
    if case.body is not None:
        # What the proxy works out at `requestheaders` from the request's own headers.
        body = request_body(
            method=case.method, content_length=str(case.body.get("length", 1024)),
            transfer_encoding=None, multiplexed=False, content_type=case.body.get("type"),
            disposition=case.body.get("disposition"), path=url.path, query=url.query,
            limit_bytes=policy.transfer_limit_bytes)
        facts = replace(facts, sends_body=body.sends_body, kinds=body.kinds)
    if not case.content:
        return decide(policy, index, facts, case.at)
    decision = decide_content(policy, index, facts, case.content, case.at)
    assert decision is not None, f"no content rule decided {sorted(case.content)}"
    return decision


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: Case, policy_set: PolicySet, category_index: CategoryIndex) -> None:
    """The engine decides each document-derived case as its clause requires."""
    policy = policy_set.policies[case.agency]
    decision = _decide(case, policy, category_index)
    expect = case.expect
    got = {
        "action": decision.action,
        "rule": decision.rule,
        "clauses": list(decision.clauses),
        "window": decision.window,
    }
    want = {key: expect[key] for key in _EXPECT_REQUIRED}
    want["clauses"] = [str(c) for c in want["clauses"]]
    if "categories" in expect:
        got["categories"] = list(decision.categories)
        want["categories"] = list(expect["categories"])
    for key in ("grant", "device", "network", "intercept", "direction"):
        if key in expect:
            got[key] = getattr(decision, key)
            want[key] = expect[key]
    if "rewrites" in expect:  # what the proxy adds to the request when it lets it through
        url = parse_url(case.url)
        rewrite = policy.controls.rewrite(url.host, url.path, url.query)
        got["rewrites"] = {"controls": list(rewrite.controls) if rewrite else [],
                           "headers": dict(rewrite.headers) if rewrite else {},
                           "query": rewrite.query if rewrite else None}
        want["rewrites"] = {"controls": [], "headers": {}, "query": None, **expect["rewrites"]}
    assert got == want, f"{case.why}\n{decision.to_json()}"


@pytest.mark.parametrize("agency", AGENCIES)
def test_cases_cite_known_clauses(agency: str, policy_set: PolicySet) -> None:
    """Every case pins a clause that the agency's clause map has."""
    policy = policy_set.policies[agency]
    unknown = sorted({c.clause for c in CASES if c.agency == agency} - set(policy.clauses))
    assert not unknown


@pytest.mark.parametrize("agency", AGENCIES)
def test_cases_cover_every_window(agency: str) -> None:
    """Each agency's cases visit all seven windows."""
    windows = {str(c.expect["window"]) for c in CASES if c.agency == agency}
    assert windows == set(WINDOWS)


@pytest.mark.parametrize("agency", AGENCIES)
def test_cases_cover_every_action_and_rule(agency: str, policy_set: PolicySet) -> None:
    """Each agency's cases reach every rule and grant and every action the policy can give."""
    policy = policy_set.policies[agency]
    mine = [c for c in CASES if c.agency == agency]
    actions = {rule.action for rule in policy.rules} | {policy.default.action}
    actions |= {grant.action for grant in policy.grants}
    if policy.allow is not None:
        actions.add("allow")
    if policy.deny is not None:
        actions.add("block")
    rules = {rule.id for rule in policy.rules} | {"default"}
    if policy.allow is not None:
        rules.add("allow-list")
    if policy.deny is not None:
        rules.add("deny-list")
    grants = {grant.id for grant in policy.grants}
    assert actions - {str(c.expect["action"]) for c in mine} == set()
    assert rules - {str(c.expect["rule"]) for c in mine} == set()
    assert grants - {str(c.expect.get("grant")) for c in mine} == set()
