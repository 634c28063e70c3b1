"""The report's model: every count a report shows, accumulated one audit line at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import orjson

from aupgate.memo import remember
from aupgate.policy.model import ACTIONS as _LEAST_SEVERE_FIRST

from ..envelope import HEAD, TIME_AT, time_key
from .counting import DEFAULT_CAP, TopCounter, bump
from .shadow import ShadowCounts

__all__ = ["ACTIONS", "Options", "Summary"]

ACTIONS = tuple(reversed(_LEAST_SEVERE_FIRST))
"""Actions as reports list them: most severe first."""
_MAX_CATEGORIES = 200
_MAX_DAYS = 4_000
_MAX_POLICY_EVENTS = 200
_OTHER = "(other)"
_LOCAL_MEMO_LIMIT = 20_001
_MAX_ACCESS_REQUESTS = 200
AUTOMATIC_PATHS = frozenset({"/favicon.ico", "/apple-touch-icon.png",
                             "/apple-touch-icon-precomposed.png"})
"""Requests a browser makes by itself for any page it shows (not page views): not counted."""


@dataclass
class _Category:
    by_action: dict[str, int] = field(default_factory=dict)
    hosts: TopCounter = field(default_factory=TopCounter)
    users: TopCounter | None = None


@dataclass
class Options:
    """What a report covers and shows."""

    since: str | None = None
    until: str | None = None
    zone: tzinfo | None = None  # None: the machine's local time
    zone_name: str = "local"
    by_user: bool = False
    uncategorized: bool = False
    top: int = 10
    cap: int = DEFAULT_CAP
    agencies: frozenset[str] = frozenset()  # empty: every agency


class Summary:
    """Everything a report says, accumulated one event at a time in bounded memory."""

    def __init__(self, options: Options) -> None:
        self.options = options
        cap = options.cap
        self.lines = 0
        self.unparsed = 0
        self.outside = 0
        self.first: str | None = None
        self.last: str | None = None
        self.decisions = 0
        self.by_action: dict[str, int] = {}
        self.categories: dict[str, _Category] = {}
        self.blocks_by_hour = [0] * 24
        self.by_day: dict[str, dict[str, int]] = {}
        self.warn_shown = 0
        self.continued = 0
        self.rejected_continues = 0
        self.automatic = 0
        self.other_agencies = 0
        self.access_requests: list[dict[str, Any]] = []
        self.access_count = 0
        self.continued_rules: dict[str, int] = {}
        self.reasons = TopCounter(cap)
        self.policy_events: list[dict[str, Any]] = []
        self.policy_counts = {"policy_loaded": 0, "policy_reloaded": 0, "policy_reload_failed": 0}
        self.health = {"engine_errors": 0, "domain_mismatches": 0, "audit_gaps": 0, "lost": 0}
        self.users = TopCounter(cap) if options.by_user else None
        self.uncategorized = TopCounter(cap) if options.uncategorized else None
        self.shadow = ShadowCounts(options.by_user, cap)
        self._local: dict[str, tuple[str, int]] = {}

    # ----------------------------------------------------------------- feeding

    def feed_lines(self, lines: Iterable[bytes], tick: Callable[[], None] | None = None) -> None:
        """Count every line of one file: the hot loop of the command, so written flat.

        Lines with our envelope have their time read by slicing, before parsing, so lines
        outside the period cost no JSON parse. `tick` is called every 16,384 lines (progress).
        """
        since, until = self.options.since, self.options.until
        load = orjson.loads
        by_action = self.by_action
        by_day = self.by_day
        categories = self.categories
        blocks = self.blocks_by_hour
        local = self._local
        users = self.users
        uncategorized = self.uncategorized
        first, last = self.first, self.last
        agencies = self.options.agencies
        count = decisions = outside = unparsed = warn_shown = automatic = 0
        for raw in lines:
            count += 1
            if tick is not None and count & 0x3FFF == 0:
                tick()
            if raw.startswith(HEAD):
                key = raw[TIME_AT].decode("ascii", "replace")
                if (since and key < since) or (until and key >= until):
                    outside += 1
                    continue
                try:
                    record = load(raw)
                except ValueError:
                    unparsed += 1
                    continue
            else:
                try:
                    record = load(raw)
                except ValueError:
                    unparsed += bool(raw.strip())
                    continue
                if type(record) is not dict:
                    unparsed += 1
                    continue
                key = time_key(raw, record)
                if (since and key < since) or (until and key >= until):
                    outside += 1
                    continue
            if type(record) is not dict:
                unparsed += 1
                continue
            if first is None or key < first:
                first = key
            if last is None or key > last:
                last = key
            get = record.get
            if agencies and get("agency") not in agencies and get("event") in _PER_AGENCY:
                self.other_agencies += 1
                continue
            if get("event") != "decision":
                self._other(key, record)
                continue
            phase = get("phase")
            action = get("action")
            if phase == "continue":
                self._continued(record)
                continue
            if phase == "connect" and get("enforced") == "passed":
                continue  # a tunnel opened: the requests inside it are decided and counted
            if get("path") in AUTOMATIC_PATHS:
                automatic += 1  # the browser's own favicon request, not a page view
                continue
            if get("enforced") == "forwarding":
                continue  # fail-closed's line before forwarding: the request's own line counts
            label = action if type(action) is str else str(get("enforced") or "none")
            decisions += 1
            by_action[label] = by_action.get(label, 0) + 1
            if label == "warn" and get("enforced") == "warned":
                warn_shown += 1
            place = local.get(key[:16])
            if place is None:
                place = self._localise(key)
            if label == "block":
                blocks[place[1]] += 1
            day = by_day.get(place[0])
            if day is None:
                day = by_day.setdefault(place[0] if len(by_day) < _MAX_DAYS else _OTHER, {})
            day[label] = day.get(label, 0) + 1
            host = get("host")
            if type(host) is not str:
                host = "-"
            user = get("user") if users is not None else None
            if type(user) is not str:
                user = None
            elif users is not None:
                users.add(user)
            cats = get("categories")
            if cats is None:
                cats = ("uncategorized",)  # a writer that leaves the field out
            for category in cats:  # none when nothing was decided (refused, error)
                entry = categories.get(category)
                if entry is None:
                    entry = self._category(category)
                table = entry.by_action
                table[label] = table.get(label, 0) + 1
                entry.hosts.add(host)
                if user is not None and entry.users is not None:
                    entry.users.add(user)
                if uncategorized is not None and category == "uncategorized":
                    uncategorized.add(host)
        self.first, self.last = first, last
        self.lines += count
        self.decisions += decisions
        self.outside += outside
        self.unparsed += unparsed
        self.warn_shown += warn_shown
        self.automatic += automatic

    def _other(self, key: str, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event in self.policy_counts:
            self._policy(key, str(event), record)
        elif event == "access_request":
            self._access(key, record)
        elif event == "engine_error":
            self.health["engine_errors"] += 1
        elif event == "domain_mismatch":
            self.health["domain_mismatches"] += 1
        elif event in ("shadow_diff", "shadow_loaded", "shadow_load_failed"):
            self.shadow.add(record)
        elif event == "audit_gap":
            self.health["audit_gaps"] += 1
            lost = record.get("lost")
            self.health["lost"] += lost if isinstance(lost, int) else 0

    def _access(self, key: str, record: dict[str, Any]) -> None:
        """An employee's request for access: counted, and the latest kept to be listed."""
        self.access_count += 1
        if len(self.access_requests) >= _MAX_ACCESS_REQUESTS:
            self.access_requests.pop(0)
        self.access_requests.append({
            "time": key, "agency": record.get("agency"), "user": record.get("user"),
            "client": record.get("client"), "host": record.get("host"),
            "path": record.get("path"), "rule": record.get("rule"),
            "explanation": record.get("explanation")})

    def _continued(self, record: dict[str, Any]) -> None:
        """A warn continuation: counted by rule, and its stated reason (normalised) kept.

        Only a form that gave a pass continued (it names the rule it continued past); one sent
        back (too short a reason, an expired form) is counted apart.
        """
        if not record.get("rule_continued") or record.get("enforced") == "continue-rejected":
            self.rejected_continues += 1
            return
        self.continued += 1
        bump(self.continued_rules, str(record.get("rule_continued") or "-"))
        reason = record.get("work_reason")
        if isinstance(reason, str) and reason.strip():
            self.reasons.add(" ".join(reason.lower().split()))

    def _category(self, name: str) -> _Category:
        entry = self.categories.get(name)
        if entry is not None:
            return entry
        if len(self.categories) >= _MAX_CATEGORIES:
            name = _OTHER
        return self.categories.setdefault(name, self._new_category())

    def _new_category(self) -> _Category:
        cap = self.options.cap
        return _Category(
            hosts=TopCounter(cap), users=TopCounter(cap) if self.options.by_user else None
        )

    def _localise(self, key: str) -> tuple[str, int]:
        """(local date, local hour) of a UTC time key, cached per minute (DST-correct)."""
        minute = key[:16]
        found = self._local.get(minute)
        if found is None:
            try:
                moment = datetime.fromisoformat(minute + ":00+00:00").astimezone(self.options.zone)
            except ValueError:
                return "-", 0
            found = remember(self._local, minute, (moment.date().isoformat(), moment.hour),
                             _LOCAL_MEMO_LIMIT)
        return found

    def _policy(self, key: str, event: str, record: dict[str, Any]) -> None:
        self.policy_counts[event] += 1
        if len(self.policy_events) >= _MAX_POLICY_EVENTS:
            self.policy_events.pop(0)  # keep the latest
        digest = record.get("digest") or record.get("policy_digest")
        errors = record.get("errors")
        errors = errors if isinstance(errors, list) else None
        self.policy_events.append(
            {
                "time": key,
                "event": event,
                "part": record.get("part", "policies" if event == "policy_loaded" else None),
                "digest": digest[:12] if isinstance(digest, str) else None,
                "errors": len(errors) if errors is not None else int("error" in record),
                "first_error": errors[0] if errors else record.get("error"),
            }
        )

    def merge(self, other: Summary) -> None:
        """Fold in the summary of another part of the logs (a worker's byte range)."""
        self.lines += other.lines
        self.unparsed += other.unparsed
        self.outside += other.outside
        self.decisions += other.decisions
        self.warn_shown += other.warn_shown
        self.continued += other.continued
        self.rejected_continues += other.rejected_continues
        self.automatic += other.automatic
        self.other_agencies += other.other_agencies
        self.access_count += other.access_count
        self.access_requests = sorted(self.access_requests + other.access_requests,
                                      key=lambda e: str(e["time"]))[-_MAX_ACCESS_REQUESTS:]
        for mine, theirs in (
            (self.by_action, other.by_action),
            (self.continued_rules, other.continued_rules),
            (self.policy_counts, other.policy_counts),
            (self.health, other.health),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        for day, counts in other.by_day.items():
            table = self.by_day.setdefault(day, {})
            for key, count in counts.items():
                table[key] = table.get(key, 0) + count
        self.blocks_by_hour = [
            a + b for a, b in zip(self.blocks_by_hour, other.blocks_by_hour, strict=True)
        ]
        for name, entry in other.categories.items():
            target = self._category(name)
            for key, count in entry.by_action.items():
                target.by_action[key] = target.by_action.get(key, 0) + count
            target.hosts.merge(entry.hosts)
            if target.users is not None and entry.users is not None:
                target.users.merge(entry.users)
        self.reasons.merge(other.reasons)
        self.shadow.merge(other.shadow)
        if self.users is not None and other.users is not None:
            self.users.merge(other.users)
        if self.uncategorized is not None and other.uncategorized is not None:
            self.uncategorized.merge(other.uncategorized)
        events = sorted(self.policy_events + other.policy_events, key=lambda e: str(e["time"]))
        self.policy_events = events[-_MAX_POLICY_EVENTS:]
        stamps = [t for t in (self.first, other.first) if t is not None]
        self.first = min(stamps) if stamps else None
        stamps = [t for t in (self.last, other.last) if t is not None]
        self.last = max(stamps) if stamps else None

    # ----------------------------------------------------------------- the model

    def to_json(self, files: Sequence[str], generated: datetime) -> dict[str, Any]:
        options = self.options
        n = options.top
        categories = sorted(
            self.categories.items(), key=lambda kv: (-sum(kv[1].by_action.values()), kv[0])
        )
        out: dict[str, Any] = {
            "report": {
                "generated": generated.isoformat(timespec="seconds"),
                "files": list(files),
                "since": options.since,
                "until": options.until,
                "time_zone": options.zone_name,
                "by_user": options.by_user,
                "first_event": self.first,
                "last_event": self.last,
                "lines": self.lines,
                "lines_outside_period": self.outside,
                "lines_unreadable": self.unparsed,
                "agencies": sorted(options.agencies),
                "lines_of_other_agencies": self.other_agencies,
                "automatic_requests_not_counted": self.automatic,
                "top": n,
                "distinct_keys_per_list": options.cap,
            },
            "decisions": {"total": self.decisions, "by_action": _ordered(self.by_action)},
            "categories": [
                {
                    "category": name,
                    "total": sum(entry.by_action.values()),
                    "by_action": _ordered(entry.by_action),
                    "top_hosts": entry.hosts.to_json(n, "host"),
                    **(
                        {"top_users": entry.users.to_json(n, "user")}
                        if entry.users is not None
                        else {}
                    ),
                }
                for name, entry in categories
            ],
            "blocks_by_hour": list(self.blocks_by_hour),
            "by_day": [
                {"date": day, "by_action": _ordered(counts)}
                for day, counts in sorted(self.by_day.items())
            ],
            "warn": {
                "shown": self.warn_shown,
                "continued": self.continued,
                "continue_rejected": self.rejected_continues,
                "continued_by_rule": [
                    {"rule": r, "count": c}
                    for r, c in sorted(self.continued_rules.items(), key=lambda rc: -rc[1])
                ],
                "reasons": self.reasons.to_json(n, "reason"),
            },
            "policy": {
                "loads": self.policy_counts["policy_loaded"],
                "reloads": self.policy_counts["policy_reloaded"],
                "reload_failures": self.policy_counts["policy_reload_failed"],
                "events": sorted(self.policy_events, key=lambda e: str(e["time"])),
            },
            "health": dict(self.health),
            "access_requests": {
                "total": self.access_count,
                "latest": sorted(self.access_requests, key=lambda e: str(e["time"]))[-n:],
            },
        }
        if self.users is not None:
            out["top_users"] = self.users.to_json(n, "user")
        if self.uncategorized is not None:
            out["uncategorized"] = self.uncategorized.to_json(max(n, 25), "host")
        if self.shadow.seen():
            out["shadow"] = self.shadow.to_json(n)
        return out


_PER_AGENCY = frozenset({"decision", "access_request", "domain_mismatch", "engine_error"})


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    """Actions in severity order, then anything else (refused, error) by name."""
    keys = [a for a in ACTIONS if a in counts] + sorted(k for k in counts if k not in ACTIONS)
    return {k: counts[k] for k in keys}
