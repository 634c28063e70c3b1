"""The report's shadow section: what the shadow policy (a candidate the proxy decided beside the
policy in force, never enforced) would have done differently.

Counted from `shadow_diff` events: the differences written and those held back by the
per-minute cap (`suppressed`), by kind of change, by action pair with the top hosts (and users
with `--by-user`), and by rule pair; plus the shadow's loads and failed loads.
"""

from __future__ import annotations

from typing import Any

from .counting import TopCounter, bump

__all__ = ["ShadowCounts"]

_MAX_KEYS = 500


class ShadowCounts:
    """Accumulates `shadow_diff`, `shadow_loaded` and `shadow_load_failed` events."""

    def __init__(self, by_user: bool, cap: int) -> None:
        self.by_user = by_user
        self.cap = cap
        self.written = 0
        self.suppressed = 0
        self.loads = 0
        self.load_failures = 0
        self.kinds: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.rules: dict[str, int] = {}
        self.hosts: dict[str, TopCounter] = {}
        self.users: dict[str, TopCounter] = {}

    def add(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "shadow_loaded":
            self.loads += 1
            return
        if event == "shadow_load_failed":
            self.load_failures += 1
            return
        self.written += 1
        suppressed = record.get("suppressed")
        self.suppressed += suppressed if type(suppressed) is int and suppressed > 0 else 0
        bump(self.kinds, str(record.get("change") or "-"))
        pair = f"{record.get('action') or '-'} -> {record.get('shadow_action') or 'refused'}"
        if pair in self.actions or len(self.actions) < _MAX_KEYS:
            bump(self.actions, pair)
            self._top(self.hosts, pair).add(str(record.get("host") or "-"))
            user = record.get("user")
            if self.by_user and type(user) is str:
                self._top(self.users, pair).add(user)
        rules = (f"{record.get('agency') or '-'}: {record.get('rule') or '-'} -> "
                 f"{record.get('shadow_rule') or '-'}")
        if rules in self.rules or len(self.rules) < _MAX_KEYS:
            bump(self.rules, rules)

    def _top(self, table: dict[str, TopCounter], key: str) -> TopCounter:
        found = table.get(key)
        if found is None:
            found = table[key] = TopCounter(self.cap)
        return found

    def merge(self, other: ShadowCounts) -> None:
        self.written += other.written
        self.suppressed += other.suppressed
        self.loads += other.loads
        self.load_failures += other.load_failures
        for mine, theirs in ((self.kinds, other.kinds), (self.actions, other.actions),
                             (self.rules, other.rules)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        for tops, their_tops in ((self.hosts, other.hosts), (self.users, other.users)):
            for key, counter in their_tops.items():
                self._top(tops, key).merge(counter)

    def seen(self) -> bool:
        return bool(self.written or self.loads or self.load_failures)

    def to_json(self, top: int) -> dict[str, Any]:
        def by_count(table: dict[str, int]) -> list[tuple[str, int]]:
            return sorted(table.items(), key=lambda kc: (-kc[1], kc[0]))

        return {
            "differences": self.written + self.suppressed,
            "written": self.written,
            "suppressed": self.suppressed,
            "loads": self.loads,
            "load_failures": self.load_failures,
            "by_change": dict(by_count(self.kinds)),
            "by_action": [
                {"from": k.split(" -> ")[0], "to": k.split(" -> ")[1], "count": c,
                 "top_hosts": self.hosts[k].to_json(top, "host"),
                 **({"top_users": self.users[k].to_json(top, "user")}
                    if k in self.users else {})}
                for k, c in by_count(self.actions)
            ],
            "by_rule": [{"rules": k, "count": c} for k, c in by_count(self.rules)[:top * 5]],
        }
