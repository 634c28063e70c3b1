"""What a candidate policy would change: the decisions of past requests under the policies in
force and under the candidate, compared and counted in bounded memory.

A request's decision **changed** when its action, its rule or its cited clauses differ. An action
change is **looser** (the candidate is less severe: block to warn, warn to allow...) or
**stricter**; a change of rule or clauses with the same action is a change of **citation** (the
same outcome, cited differently: the page and the audit line say something else). Counts are
exact; top lists are bounded (`TopCounter`: exact until full, then approximate with a stated
bound). Users are counted only when asked (`by_user`), as in `aupgate report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aupgate.audit.report.counting import TopCounter
from aupgate.engine import Decision
from aupgate.policy.model import SEVERITY

__all__ = ["GATES", "DiffSummary", "change_kind"]

GATES = ("action", "looser", "stricter", "any", "never")
"""What `aupgate diff --fail-on` can gate on: any action change (default), only looser or only
stricter ones, any change at all (citations too), or nothing (always exit 0)."""


def change_kind(old: Decision, new: Decision) -> str | None:
    """`looser`, `stricter`, `citation`, or None when the decision is the same."""
    if old.action != new.action:
        return "looser" if SEVERITY[new.action] < SEVERITY[old.action] else "stricter"
    if old.rule != new.rule or old.clauses != new.clauses:
        return "citation"
    return None


def _bump(table: dict[str, int], key: str, by: int = 1) -> None:
    table[key] = table.get(key, 0) + by


@dataclass
class DiffSummary:
    """Every count `aupgate diff` reports; one per worker, merged."""

    by_user: bool = False
    lines: int = 0
    requests: int = 0
    skipped: int = 0
    unreadable: int = 0
    undecidable: int = 0
    drift: int = 0  # the policies in force decide the line otherwise than the log says
    kinds: dict[str, int] = field(default_factory=dict)
    phases: dict[str, int] = field(default_factory=dict)
    agencies: dict[str, dict[str, int]] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)  # "block -> warn"
    rules: dict[str, int] = field(default_factory=dict)  # "agency: old-rule -> new-rule"
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    hosts: dict[str, TopCounter] = field(default_factory=dict)  # per action pair
    users: dict[str, TopCounter] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first few, for the report

    def count(self, phase: str, old: Decision, new: Decision, host: str,
              who: str | None) -> str | None:
        """Count one replayed request; its kind of change (or None)."""
        self.requests += 1
        _bump(self.phases, phase)
        agency = self.agencies.setdefault(old.agency, {"requests": 0, "changed": 0})
        agency["requests"] += 1
        kind = change_kind(old, new)
        if kind is None:
            return None
        agency["changed"] += 1
        _bump(self.kinds, kind)
        pair = f"{old.action} -> {new.action}"
        _bump(self.actions, pair)
        _bump(self.rules, f"{old.agency}: {old.rule} -> {new.rule}")
        for category in old.categories:
            entry = self.categories.setdefault(category, {})
            _bump(entry, pair)
        hosts = self.hosts.get(pair)
        if hosts is None:
            hosts = self.hosts[pair] = TopCounter()
        hosts.add(host)
        if self.by_user and who is not None:
            users = self.users.get(pair)
            if users is None:
                users = self.users[pair] = TopCounter()
            users.add(who)
        return kind

    def problem(self, text: str) -> None:
        self.undecidable += 1
        if len(self.problems) < 20:
            self.problems.append(text)

    @property
    def changed(self) -> int:
        return sum(self.kinds.values())

    def gated(self, gate: str) -> int:
        """How many changes the gate (`--fail-on`) counts."""
        kinds = self.kinds
        if gate == "never":
            return 0
        if gate == "any":
            return self.changed
        if gate == "action":
            return kinds.get("looser", 0) + kinds.get("stricter", 0)
        return kinds.get(gate, 0)

    def merge(self, other: DiffSummary) -> None:
        for name in ("lines", "requests", "skipped", "unreadable", "undecidable", "drift"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.kinds, other.kinds), (self.phases, other.phases),
                             (self.actions, other.actions), (self.rules, other.rules)):
            for key, value in theirs.items():
                _bump(mine, key, value)
        for name, counts in other.agencies.items():
            entry = self.agencies.setdefault(name, {"requests": 0, "changed": 0})
            for key, value in counts.items():
                _bump(entry, key, value)
        for name, counts in other.categories.items():
            entry = self.categories.setdefault(name, {})
            for key, value in counts.items():
                _bump(entry, key, value)
        for tops, theirs_tops in ((self.hosts, other.hosts), (self.users, other.users)):
            for pair, counter in theirs_tops.items():
                if pair in tops:
                    tops[pair].merge(counter)
                else:
                    tops[pair] = counter
        self.problems = (self.problems + other.problems)[:20]

    def to_json(self, top: int, gate: str) -> dict[str, Any]:
        def ordered(table: dict[str, int]) -> list[dict[str, Any]]:
            return [{"key": k, "count": c}
                    for k, c in sorted(table.items(), key=lambda kc: (-kc[1], kc[0]))]

        out: dict[str, Any] = {
            "lines": self.lines,
            "requests": self.requests,
            "skipped": self.skipped,
            "unreadable": self.unreadable,
            "undecidable": self.undecidable,
            "drift": self.drift,
            "changed": self.changed,
            "looser": self.kinds.get("looser", 0),
            "stricter": self.kinds.get("stricter", 0),
            "citation": self.kinds.get("citation", 0),
            "fail_on": gate,
            "gated": self.gated(gate),
            "phases": dict(sorted(self.phases.items())),
            "agencies": [{"agency": name, **counts}
                         for name, counts in sorted(self.agencies.items())],
            "actions": [
                {"from": k.split(" -> ")[0], "to": k.split(" -> ")[1], "count": c,
                 "top_hosts": self.hosts[k].to_json(top, "host"),
                 **({"top_users": self.users[k].to_json(top, "user")}
                    if k in self.users else {})}
                for k, c in sorted(self.actions.items(), key=lambda kc: (-kc[1], kc[0]))
            ],
            "rules": [
                {"agency": k.split(": ", 1)[0], "from": k.split(": ", 1)[1].split(" -> ")[0],
                 "to": k.split(" -> ")[1], "count": c}
                for k, c in sorted(self.rules.items(), key=lambda kc: (-kc[1], kc[0]))
            ],
            "categories": [
                {"category": name, "changed": sum(pairs.values()), "actions": ordered(pairs)}
                for name, pairs in sorted(self.categories.items(),
                                          key=lambda kv: (-sum(kv[1].values()), kv[0]))
            ],
            "problems": list(self.problems),
        }
        return out
