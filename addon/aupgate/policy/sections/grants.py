"""The `grants` section: written exceptions that relax named rules for named people."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from aupgate.yamlsource import FieldReader

from ..model import STOPPING, Grant, Group, Rule
from .rules import read_action

__all__ = ["read_grants"]

_GRANT_KEYS = ("id", "rules", "users", "groups", "action", "approved_by", "reason", "expires")


def read_grants(
    reader: FieldReader,
    top: Mapping[str, Any],
    rules: list[Rule],
    groups: Mapping[str, Group],
    today: date,
) -> list[Grant]:
    raw = reader.sequence(top, "grants", "grants")
    rule_ids = tuple(r.id for r in rules)
    grants: list[Grant] = []
    for i, _item in enumerate(raw):
        field = f"grants[{i}]"
        item = reader.mapping(
            raw, i, field, _GRANT_KEYS, ("id", "rules", "approved_by", "reason", "expires")
        )
        if item is None:
            continue
        gid = reader.string(item, "id", field)
        granted_rules = reader.choices(item, "rules", field, rule_ids, "rule")
        group_names = reader.choices(item, "groups", field, tuple(groups), "group") or frozenset()
        users = frozenset(u.lower() for _, u in reader.strings(item, "users", field))
        if not users and not group_names and "groups" not in item:
            reader.problem(raw, i, field, "names no users or groups")
        action = read_action(reader, item, field) if "action" in item else "log"
        if action in STOPPING:
            reader.problem(
                item,
                "action",
                f"{field}.action",
                f"a grant relaxes a rule: its action is allow or log, not '{action}'",
            )
        expires = (reader.day(item, "expires", f"{field}.expires", item["expires"])
                   if item.get("expires") is not None else None)
        if expires is not None and expires < today:
            reader.problem(
                item,
                "expires",
                f"{field}.expires",
                f"grant '{gid}' expired on {expires} and has no effect",
                "warning",
            )
        approved_by = reader.string(item, "approved_by", field)
        reason = reader.string(item, "reason", field)
        if gid and granted_rules and action and approved_by and reason and expires:
            grants.append(
                Grant(gid, granted_rules, users, group_names, action, approved_by, reason, expires)
            )
    return grants
