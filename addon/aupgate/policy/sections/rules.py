"""The `rules` section: each rule's conditions, action and cited clauses, in file order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aupgate.content import CONTENT_KINDS
from aupgate.yamlsource import FieldReader, join_field, line_of

from ..model import ACTIONS, DEVICES, DIRECTIONS, ID, STOPPING, Action, Group, Match, Network, Rule
from ..schedule import ANY, WINDOWS, Schedule
from .sites import read_site

__all__ = ["RuleScope", "read_action", "read_rules"]

_RULE_KEYS = ("id", "clauses", "match", "action", "reason")
_MATCH_KEYS = (
    "categories",
    "domains",
    "urls",
    "windows",
    "devices",
    "groups",
    "users",
    "networks",
    "content",
    "direction",
)


@dataclass(frozen=True, slots=True)
class RuleScope:
    """What the rest of the file lets a rule name: its windows, window sets, networks, groups."""

    schedule: Schedule | None
    set_names: tuple[str, ...]
    networks: tuple[Network, ...]
    groups: Mapping[str, Group]
    possible: frozenset[str]  # the windows this schedule can ever be in


def read_rules(
    reader: FieldReader, top: dict[str, Any], scope: RuleScope
) -> tuple[list[Rule], frozenset[str]]:
    """The rules in file order, and the ids of those with a condition that could not be read
    (their match is incomplete: `lint.check_reachable` leaves them out)."""
    raw = reader.sequence(top, "rules", "rules")
    rules: list[Rule] = []
    unreadable: set[str] = set()
    for i, _item in enumerate(raw):
        field = f"rules[{i}]"
        item = reader.mapping(raw, i, field, _RULE_KEYS, ("id", "match", "action", "reason"))
        if item is None:
            continue
        before = len(reader.problems)
        rule = _read_rule(reader, item, field, scope)
        if rule is None:
            continue
        if any(r.id == rule.id for r in rules):
            reader.problem(item, "id", f"{field}.id", f"rule id '{rule.id}' is used twice")
            continue
        if len(reader.problems) != before:
            unreadable.add(rule.id)
        rules.append(rule)
    return rules, frozenset(unreadable)


def _read_rule(
    reader: FieldReader, item: dict[str, Any], field: str, scope: RuleScope
) -> Rule | None:
    rid = reader.string(item, "id", field)
    if rid is not None and not ID.match(rid):
        reader.problem(item, "id", f"{field}.id", f"'{rid}' is not a valid id ([a-z0-9-]+)")
    action = read_action(reader, item, field)
    reason = reader.string(item, "reason", field)
    clauses = tuple(c for _, c in reader.strings(item, "clauses", field))
    if action in STOPPING and not clauses:
        reader.problem(
            item, "action", f"{field}.clauses", f"a '{action}' rule must cite at least one clause"
        )
    mfield = f"{field}.match"
    m = reader.mapping(item, "match", mfield, _MATCH_KEYS)
    if m is None:
        return None
    if not m:
        reader.problem(item, "match", mfield, "must have at least one condition")
    match = _read_match(reader, m, mfield, scope)
    if rid is None or action is None or reason is None or match is None:
        return None
    return Rule(rid, clauses, match, action, reason, line_of(item))


def read_action(reader: FieldReader, item: Mapping[str, Any], field: str) -> Action | None:
    action = reader.string(item, "action", field)
    if action is None:
        return None
    for known in ACTIONS:
        if action == known:
            return known
    reader.problem(
        item,
        "action",
        join_field(field, "action"),
        f"unknown action '{action}' (one of: {', '.join(ACTIONS)})",
    )
    return None


def _read_match(
    reader: FieldReader, m: dict[str, Any], field: str, scope: RuleScope
) -> Match | None:
    site = read_site(reader, m, field) if {"categories", "domains", "urls"} & m.keys() else None
    schedule = scope.schedule
    window_names = (*WINDOWS, ANY, *scope.set_names)
    windows = reader.choices(m, "windows", field, window_names, "window")
    # Without a usable schedule the names stay unresolved: never "any window", which would make
    # this rule look as if it covered the rules after it.
    resolved = windows
    if windows is not None and schedule is not None:
        resolved = schedule.resolve(windows)
        if windows and not (resolved & scope.possible):
            reader.problem(
                m,
                "windows",
                f"{field}.windows",
                f"can never match: this schedule has none of the windows {sorted(resolved)}",
            )
    devices = reader.choices(m, "devices", field, DEVICES, "device class")
    group_names = reader.choices(m, "groups", field, tuple(scope.groups), "group")
    users: frozenset[str] | None = None
    if "users" in m:
        users = frozenset(u.lower() for _, u in reader.strings(m, "users", field))
    network_names = reader.choices(
        m, "networks", field, tuple(n.name for n in scope.networks), "network"
    )
    content = reader.choices(m, "content", field, CONTENT_KINDS, "content kind")
    directions = reader.choices(m, "direction", field, DIRECTIONS, "direction")
    if directions is not None and "upload" in directions:
        directions = directions | {"publish"}  # publishing is uploading to a posting endpoint
    return Match(
        site,
        resolved,
        devices,
        group_names,
        users,
        network_names,
        content,
        directions,
    )
