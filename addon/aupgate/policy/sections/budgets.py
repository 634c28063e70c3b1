"""The `budgets` section: daily personal-use budgets (minutes of activity, or megabytes).

```yaml
budgets:
  - id: personal-use-daily
    clauses: ["9"]
    match:
      categories: [social-networking, shopping, streaming-video]
      windows: [personal-time]
    minutes: 60          # or megabytes: 200
    action: block        # block (default) or log
    reason: Personal use should be infrequent.
```
"""

from __future__ import annotations

from typing import Any

from aupgate.yamlsource import FieldReader, line_of

from ..model import DEVICES, ID, POLICY_CATEGORIES, Budget, Rule
from ..schedule import ANY, WINDOWS, Schedule
from .rules import read_action

__all__ = ["read_budgets"]

_KEYS = ("id", "clauses", "match", "minutes", "megabytes", "action", "reason")
_MATCH_KEYS = ("categories", "windows", "devices")
_MAX_MINUTES = 24 * 60
_MEGABYTE = 1024 * 1024


def read_budgets(
    reader: FieldReader,
    top: dict[str, Any],
    schedule: Schedule | None,
    set_names: tuple[str, ...],
    rules: list[Rule],
) -> list[Budget]:
    raw = reader.sequence(top, "budgets", "budgets")
    budgets: list[Budget] = []
    taken = {rule.id for rule in rules}
    for i, _item in enumerate(raw):
        field = f"budgets[{i}]"
        item = reader.mapping(raw, i, field, _KEYS, ("id", "clauses", "match", "reason"))
        if item is None:
            continue
        budget = _read_budget(reader, item, field, schedule, set_names)
        if budget is None:
            continue
        if budget.id in taken:
            reader.problem(item, "id", f"{field}.id",
                           f"'{budget.id}' is already the id of a rule or budget")
            continue
        taken.add(budget.id)
        budgets.append(budget)
    return budgets


def _read_budget(
    reader: FieldReader,
    item: dict[str, Any],
    field: str,
    schedule: Schedule | None,
    set_names: tuple[str, ...],
) -> Budget | None:
    before = len(reader.problems)
    bid = reader.string(item, "id", field)
    if bid is not None and not ID.match(bid):
        reader.problem(item, "id", f"{field}.id", f"'{bid}' is not a valid id ([a-z0-9-]+)")
    clauses = tuple(c for _, c in reader.strings(item, "clauses", field))
    if "clauses" in item and not clauses:
        reader.problem(item, "clauses", f"{field}.clauses", "a budget must cite a clause")
    action = read_action(reader, item, field) if "action" in item else "block"
    if action is not None and action not in ("block", "log"):
        reader.problem(item, "action", f"{field}.action",
                       f"a spent budget blocks or logs, not '{action}'")
    reason = reader.string(item, "reason", field)
    unit, limit = _read_limit(reader, item, field)
    mfield = f"{field}.match"
    m = reader.mapping(item, "match", mfield, _MATCH_KEYS, ("categories",))
    categories = windows = devices = None
    if m is not None:
        categories = reader.choices(m, "categories", mfield, sorted(POLICY_CATEGORIES),
                                    "category")
        windows = reader.choices(m, "windows", mfield, (*WINDOWS, ANY, *set_names), "window")
        if windows is not None and schedule is not None:
            windows = schedule.resolve(windows)
        devices = reader.choices(m, "devices", mfield, DEVICES, "device class")
    if len(reader.problems) != before or None in (bid, action, reason, unit, categories):
        return None
    assert bid and action and reason and unit and limit and categories
    return Budget(bid, clauses, categories, windows, devices, unit, limit, action, reason,
                  line_of(item))


def _read_limit(reader: FieldReader, item: dict[str, Any], field: str) -> tuple[Any, int | None]:
    given = [key for key in ("minutes", "megabytes") if key in item]
    if len(given) != 1:
        reader.problem(item, None, field, "give exactly one of 'minutes' and 'megabytes'")
        return None, None
    key = given[0]
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        reader.problem(item, key, f"{field}.{key}", f"expected a positive number, got {value!r}")
        return None, None
    if key == "minutes":
        if not isinstance(value, int) or value > _MAX_MINUTES:
            reader.problem(item, key, f"{field}.{key}",
                           f"expected a whole number of minutes up to {_MAX_MINUTES}, "
                           f"got {value!r}")
            return None, None
        return "minutes", value
    return "bytes", int(value * _MEGABYTE)
