"""Checks across a policy's sections, and across agencies.

Every cited clause exists and every clause is enforced or says why it cannot be; no domain is on
both the allow and the deny list; no two agencies claim the same client addresses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aupgate.errors import Problem, did_you_mean
from aupgate.rewrites import RequestControls
from aupgate.yamlsource import FieldReader

from .model import Budget, Clause, IPNetwork, Policy, Rule, SiteList, Verdict

__all__ = ["check_clause_map", "check_lists_disjoint", "cross_agency_overlaps"]

def check_clause_map(
    reader: FieldReader,
    top: Mapping[str, Any],
    clauses: Mapping[str, Clause],
    rules: list[Rule],
    default: Verdict | None,
    allow: SiteList | None,
    deny: SiteList | None,
    controls: RequestControls | None = None,
    ports: Verdict | None = None,
    budgets: Sequence[Budget] = (),
) -> None:
    """Every cited clause exists; every clause is enforced or says why it cannot be (a rule, the
    default, a list, or the `tenants` and `safe_search` sections may enforce it)."""
    cited: dict[str, str] = {}
    raw_budgets = top.get("budgets") if isinstance(top.get("budgets"), list) else []
    for i, budget in enumerate(budgets):
        for cid in budget.clauses:
            cited.setdefault(cid, budget.id)
            if cid not in clauses:
                reader.problem(
                    _index_item(raw_budgets, budget.id), "clauses",
                    f"budgets[{_index_of(raw_budgets, budget.id, i)}].clauses",
                    f"cites unknown clause '{cid}'{did_you_mean(cid, clauses)}",
                )
    raw_rules = top.get("rules") if isinstance(top.get("rules"), list) else []
    for i, rule in enumerate(rules):
        item = next(
            (r for r in raw_rules or [] if isinstance(r, dict) and r.get("id") == rule.id), None
        )
        for cid in rule.clauses:
            cited.setdefault(cid, rule.id)
            if cid not in clauses:
                reader.problem(
                    item,
                    "clauses",
                    f"rules[{_index_of(raw_rules, rule.id, i)}].clauses",
                    f"cites unknown clause '{cid}'{did_you_mean(cid, clauses)}",
                )
    for key, verdict in (
        ("default", default),
        ("allow", allow and allow.verdict),
        ("deny", deny and deny.verdict),
        ("ports", ports),
    ):
        if not verdict:
            continue
        for cid in verdict.clauses:
            cited.setdefault(cid, key)
            if cid not in clauses:
                reader.problem(
                    top.get(key),
                    "clauses",
                    f"{key}.clauses",
                    f"cites unknown clause '{cid}'{did_you_mean(cid, clauses)}",
                )
    for key, section in (("tenants", controls and controls.tenants),
                         ("safe_search", controls and controls.safe_search)):
        for cid in section.clauses if section else ():
            cited.setdefault(cid, key)
            if cid not in clauses:
                reader.problem(top.get(key), "clauses", f"{key}.clauses",
                               f"cites unknown clause '{cid}'{did_you_mean(cid, clauses)}")
    raw_clauses = top.get("clauses")
    for cid, clause in clauses.items():
        item = raw_clauses.get(cid) if isinstance(raw_clauses, dict) else None
        if cid in cited and clause.not_enforceable:
            reader.problem(
                item,
                "not_enforceable",
                f"clauses.{cid}.not_enforceable",
                f"is marked not enforceable but '{cited[cid]}' cites it",
            )
        elif cid not in cited and not clause.not_enforceable:
            reader.problem(
                raw_clauses,
                cid,
                f"clauses.{cid}",
                "no rule cites this clause: cite it or say why it is not_enforceable",
            )


def _index_item(raw: list[Any] | None, item_id: str) -> Any:
    return next((r for r in raw or [] if isinstance(r, dict) and r.get("id") == item_id), None)


def _index_of(raw_rules: list[Any] | None, rule_id: str, fallback: int) -> int:
    for i, item in enumerate(raw_rules or []):
        if isinstance(item, dict) and item.get("id") == rule_id:
            return i
    return fallback


def check_lists_disjoint(
    reader: FieldReader, top: Mapping[str, Any], allow: SiteList | None, deny: SiteList | None
) -> None:
    if allow is None or deny is None:
        return
    for domain in sorted(allow.site.domains & deny.site.domains):
        reader.problem(
            top.get("allow"),
            "domains",
            "allow.domains",
            f"'{domain}' is on both the allow and the deny list",
        )


# --------------------------------------------------------------------------- directories

def cross_agency_overlaps(policies: Mapping[str, Policy]) -> list[Problem]:
    problems: list[Problem] = []
    seen: list[tuple[IPNetwork, str, str]] = []
    for policy in policies.values():
        for network in policy.networks:
            for cidr in network.cidrs:
                for other, agency, name in seen:
                    if (
                        agency != policy.agency
                        and cidr.version == other.version
                        and cidr.overlaps(other)
                    ):
                        problems.append(
                            Problem(
                                policy.source,
                                network.line,
                                f"identity.networks.{network.name}",
                                f"{cidr} overlaps {other} of agency '{agency}' (network '{name}'): "
                                "a client address must belong to one agency",
                            )
                        )
                seen.append((cidr, policy.agency, network.name))
    return problems
