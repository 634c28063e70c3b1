"""`aupgate report`: what happened over a period, as a table, CSV, JSON or a page a director reads.

A year of audit logs is gigabytes, so the report streams: each line is parsed once (orjson when
installed), counted, and dropped. Everything kept is bounded: counts by action, category, hour
and day are exact and small; "top" lists (hosts, users, warn reasons, uncategorized hosts) keep at
most `cap` distinct keys each and switch to the Misra-Gries summary past that, whose counts are
low by at most a stated bound (shown with the list). Nothing else grows with the log.

Privacy: user names appear only with `--by-user`; otherwise the summary holds none at all.
The JSON form is the model; the table, CSV and HTML forms are renderings of it.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .auditchain import loads
from .review import ReviewError, open_lines, parse_when, time_key

ACTIONS = ("block", "warn", "log", "allow")
FORMATS = ("table", "csv", "json", "html")
DEFAULT_CAP = 10_000
_MAX_CATEGORIES = 200
_MAX_DAYS = 4_000
_MAX_POLICY_EVENTS = 200
_ENVELOPE = b'{"schema_version": 1, "time": "'
_TIME_AT = slice(len(_ENVELOPE), len(_ENVELOPE) + 27)
_OTHER = "(other)"


# --------------------------------------------------------------------------- bounded counting


class TopCounter:
    """Counts keys in at most `cap` slots: exact until full, then Misra-Gries.

    Misra-Gries keeps every key seen more than n/(cap+1) times, and each kept count is low by at
    most `error` (the number of decrement rounds), so a report can say how approximate it is.
    """

    __slots__ = ("cap", "counts", "error", "total")

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.total = 0
        self.error = 0

    def add(self, key: str) -> None:
        self.total += 1
        counts = self.counts
        count = counts.get(key)
        if count is not None:
            counts[key] = count + 1
        elif len(counts) < self.cap:
            counts[key] = 1
        else:
            self.error += 1
            self.counts = {k: c - 1 for k, c in counts.items() if c > 1}

    def merge(self, other: TopCounter) -> None:
        """Add another summary (the mergeable Misra-Gries rule): error bounds add up."""
        counts = self.counts
        for key, count in other.counts.items():
            counts[key] = counts.get(key, 0) + count
        self.total += other.total
        self.error += other.error
        if len(counts) > self.cap:
            cut = sorted(counts.values(), reverse=True)[self.cap]
            self.counts = {k: c - cut for k, c in counts.items() if c > cut}
            self.error += cut

    def top(self, n: int) -> list[tuple[str, int]]:
        """The n largest counts, largest first (ties by key, for stable output)."""
        return sorted(self.counts.items(), key=lambda kc: (-kc[1], kc[0]))[:n]

    def to_json(self, n: int, name: str) -> dict[str, Any]:
        return {
            "items": [{name: k, "count": c} for k, c in self.top(n)],
            "approximate": self.error > 0,
            "error_bound": self.error,
        }


def _bump(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1


# --------------------------------------------------------------------------- the summary


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
        self.continued_rules: dict[str, int] = {}
        self.reasons = TopCounter(cap)
        self.policy_events: list[dict[str, Any]] = []
        self.policy_counts = {"policy_loaded": 0, "policy_reloaded": 0, "policy_reload_failed": 0}
        self.health = {"engine_errors": 0, "domain_mismatches": 0, "audit_gaps": 0, "lost": 0}
        self.users = TopCounter(cap) if options.by_user else None
        self.uncategorized = TopCounter(cap) if options.uncategorized else None
        self._local: dict[str, tuple[str, int]] = {}

    # ----------------------------------------------------------------- feeding

    def feed_lines(self, lines: Iterable[bytes], tick: Callable[[], None] | None = None) -> None:
        """Count every line of one file: the hot loop of the command, so written flat.

        Lines with our envelope have their time read by slicing, before parsing, so lines
        outside the period cost no JSON parse. `tick` is called every 16,384 lines (progress).
        """
        since, until = self.options.since, self.options.until
        load = loads
        by_action = self.by_action
        by_day = self.by_day
        categories = self.categories
        blocks = self.blocks_by_hour
        local = self._local
        users = self.users
        uncategorized = self.uncategorized
        first, last = self.first, self.last
        count = decisions = outside = unparsed = warn_shown = 0
        for raw in lines:
            count += 1
            if tick is not None and count & 0x3FFF == 0:
                tick()
            if raw.startswith(_ENVELOPE):
                key = raw[_TIME_AT].decode("ascii", "replace")
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
            if get("event") != "decision":
                self._other(key, record)
                continue
            phase = get("phase")
            action = get("action")
            if phase == "continue":
                self._continued(record)
                continue
            if phase == "connect" and (action == "allow" or action == "log"):
                continue  # a tunnel opened: the requests inside it are decided and counted
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

    def _other(self, key: str, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event in self.policy_counts:
            self._policy(key, str(event), record)
        elif event == "engine_error":
            self.health["engine_errors"] += 1
        elif event == "domain_mismatch":
            self.health["domain_mismatches"] += 1
        elif event == "audit_gap":
            self.health["audit_gaps"] += 1
            lost = record.get("lost")
            self.health["lost"] += lost if isinstance(lost, int) else 0

    def _continued(self, record: dict[str, Any]) -> None:
        """A warn continuation: counted by rule, and its stated reason (normalised) kept."""
        self.continued += 1
        _bump(self.continued_rules, str(record.get("rule_continued") or "-"))
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
            found = (moment.date().isoformat(), moment.hour)
            if len(self._local) > 20_000:
                self._local.clear()
            self._local[minute] = found
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
        }
        if self.users is not None:
            out["top_users"] = self.users.to_json(n, "user")
        if self.uncategorized is not None:
            out["uncategorized"] = self.uncategorized.to_json(max(n, 25), "host")
        return out


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    """Actions in severity order, then anything else (refused, error) by name."""
    keys = [a for a in ACTIONS if a in counts] + sorted(k for k in counts if k not in ACTIONS)
    return {k: counts[k] for k in keys}


# --------------------------------------------------------------------------- reading with progress


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal; bytes read of bytes to read."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = stream.isatty()
        self.done = 0
        self._last = 0.0
        self._started = time.monotonic()

    def update(self, position: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        fraction = min((self.done + position) / self.total, 1.0)
        filled = int(fraction * 30)
        rate = (self.done + position) / max(now - self._started, 1e-6) / 1e6
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%}  {rate:6.1f} MB/s"
        )
        self.stream.flush()

    def update_from(self, handle: Any) -> None:
        self.update(handle.tell())

    def finish_file(self, size: int) -> None:
        self.done += size

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


_CHUNK = 64 * 1024 * 1024


def _parts(paths: Sequence[Path], sizes: Sequence[int], jobs: int) -> list[tuple[Path, int, int]]:
    """(file, start, end) pieces: plain files cut at line starts, about two per worker each."""
    parts: list[tuple[Path, int, int]] = []
    for path, size in zip(paths, sizes, strict=True):
        with path.open("rb") as handle:
            gz = handle.read(2) == b"\x1f\x8b"
            pieces = 1 if gz or jobs == 1 else max(1, min(jobs * 2, size // _CHUNK))
            start = 0
            for index in range(1, pieces + 1):
                end = size
                if index < pieces:
                    handle.seek(size * index // pieces)
                    handle.readline()  # to the start of the next whole line
                    end = handle.tell()
                if end > start:
                    parts.append((path, start, end))
                start = end
    return parts


def _summarise_part(path: Path, start: int, end: int, options: Options) -> Summary:
    """A worker's job: one byte range of a plain file (or a whole .gz file), in blocks."""
    summary = Summary(options)
    if start == 0 and end == path.stat().st_size:
        with open_lines(path) as handle:
            summary.feed_lines(handle)
        return summary
    with path.open("rb") as handle:
        handle.seek(start)
        remaining, tail = end - start, b""
        while remaining > 0:
            block = handle.read(min(8 * 1024 * 1024, remaining))
            if not block:
                break
            remaining -= len(block)
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            summary.feed_lines(lines)
        if tail:
            summary.feed_lines([tail])
    return summary


def summarise(
    paths: Sequence[Path], options: Options, *, progress: TextIO, jobs: int = 1
) -> Summary:
    """Read every file once (a summary needs no time order), in `jobs` processes.

    With one job the lines stream through this process; with more, plain files are cut into
    byte ranges at line boundaries, summarised by worker processes, and the bounded summaries
    merged. Each worker holds one summary, so memory is about `jobs` times one summary.
    """
    sizes = []
    for path in paths:
        try:
            sizes.append(path.stat().st_size)
        except OSError as exc:
            raise ReviewError(f"{path}: {exc.strerror or exc}") from exc
    bar = _Progress(sum(sizes), progress)
    try:
        if jobs <= 1:
            summary = Summary(options)
            for path, size in zip(paths, sizes, strict=True):
                with open_lines(path) as handle:
                    raw = getattr(handle, "fileobj", None) or handle
                    tick = partial(bar.update_from, raw) if bar.enabled else None
                    summary.feed_lines(handle, tick)
                bar.finish_file(size)
            return summary
        summary = Summary(options)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {
                pool.submit(_summarise_part, path, start, end, options): end - start
                for path, start, end in _parts(paths, sizes, jobs)
            }
            for future in as_completed(futures):
                summary.merge(future.result())
                bar.finish_file(futures[future])
                bar.update(0)
        return summary
    except (OSError, EOFError) as exc:
        raise ReviewError(str(exc)) from exc
    finally:
        bar.close()


# --------------------------------------------------------------------------- table


def render_table(model: dict[str, Any]) -> str:
    """The terminal form: sections of aligned columns."""
    r = model["report"]
    lines = [
        f"aupgate report: {r['first_event'] or '-'} to {r['last_event'] or '-'} "
        f"(times of day in {r['time_zone']})",
        f"{r['lines']} lines read, {model['decisions']['total']} decisions",
        "",
        "DECISIONS BY ACTION",
    ]
    lines += [f"  {a:<10} {c:>10}" for a, c in model["decisions"]["by_action"].items()]
    lines += ["", "BY CATEGORY", f"  {'category':<22} {'total':>9} " + _action_header()]
    for cat in model["categories"]:
        counts = " ".join(f"{cat['by_action'].get(a, 0):>8}" for a in ACTIONS)
        lines.append(f"  {cat['category']:<22} {cat['total']:>9} {counts}")
    lines += ["", "TOP HOSTS PER CATEGORY"]
    for cat in model["categories"]:
        lines.append(f"  {cat['category']}{_approx(cat['top_hosts'])}")
        lines += [f"    {i['count']:>9}  {i['host']}" for i in cat["top_hosts"]["items"]]
        if "top_users" in cat:
            lines.append(f"    users{_approx(cat['top_users'])}:")
            lines += [f"    {i['count']:>9}  {i['user']}" for i in cat["top_users"]["items"]]
    if "top_users" in model:
        lines += ["", f"TOP USERS{_approx(model['top_users'])}"]
        lines += [f"  {i['count']:>9}  {i['user']}" for i in model["top_users"]["items"]]
    peak = max(model["blocks_by_hour"]) or 1
    lines += ["", "BLOCKS BY HOUR OF DAY"]
    for hour, count in enumerate(model["blocks_by_hour"]):
        lines.append(f"  {hour:02d}:00 {count:>9} {'#' * round(40 * count / peak)}")
    warn = model["warn"]
    lines += [
        "",
        f"WARNINGS: {warn['shown']} shown, {warn['continued']} continued with a stated reason",
    ]
    lines += [f"  {w['count']:>9}  past {w['rule']}" for w in warn["continued_by_rule"]]
    lines.append(f"  reasons{_approx(warn['reasons'])}:")
    lines += [f"  {i['count']:>9}  {i['reason']}" for i in warn["reasons"]["items"]]
    pol = model["policy"]
    lines += [
        "",
        f"POLICY: {pol['loads']} load(s), {pol['reloads']} reload(s), "
        f"{pol['reload_failures']} failed reload(s)",
    ]
    lines += [
        f"  {e['time']}  {e['event']:<21} {e['part'] or '':<10} {e['digest'] or '':<12} "
        + (f"{e['errors']} error(s): {e['first_error']}" if e["errors"] else "")
        for e in pol["events"]
    ]
    h = model["health"]
    lines += [
        "",
        f"HEALTH: {h['engine_errors']} engine error(s), {h['domain_mismatches']} domain "
        f"mismatch(es), {h['audit_gaps']} audit gap(s) losing {h['lost']} event(s)",
    ]
    if "uncategorized" in model:
        lines += ["", f"MOST REQUESTED UNCATEGORIZED HOSTS{_approx(model['uncategorized'])}"]
        lines += [f"  {i['count']:>9}  {i['host']}" for i in model["uncategorized"]["items"]]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _action_header() -> str:
    return " ".join(f"{a:>8}" for a in ACTIONS)


def _approx(top: dict[str, Any]) -> str:
    return (
        f" (approximate: counts may be low by up to {top['error_bound']})"
        if top["approximate"]
        else ""
    )


# --------------------------------------------------------------------------- CSV


def render_csv(model: dict[str, Any]) -> str:
    """One long table for spreadsheets: section, category, key, count."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["section", "category", "key", "count"])
    for action, count in model["decisions"]["by_action"].items():
        out.writerow(["action", "", action, count])
    for cat in model["categories"]:
        for action, count in cat["by_action"].items():
            out.writerow(["category_action", cat["category"], action, count])
        for item in cat["top_hosts"]["items"]:
            out.writerow(["category_host", cat["category"], item["host"], item["count"]])
        for item in cat.get("top_users", {}).get("items", []):
            out.writerow(["category_user", cat["category"], item["user"], item["count"]])
    for hour, count in enumerate(model["blocks_by_hour"]):
        out.writerow(["blocks_by_hour", "", f"{hour:02d}", count])
    for day in model["by_day"]:
        for action, count in day["by_action"].items():
            out.writerow(["day_action", day["date"], action, count])
    for rule in model["warn"]["continued_by_rule"]:
        out.writerow(["warn_continued", "", rule["rule"], rule["count"]])
    for item in model["warn"]["reasons"]["items"]:
        out.writerow(["warn_reason", "", item["reason"], item["count"]])
    for key in ("loads", "reloads", "reload_failures"):
        out.writerow(["policy", "", key, model["policy"][key]])
    for key, count in model["health"].items():
        out.writerow(["health", "", key, count])
    for item in model.get("top_users", {}).get("items", []):
        out.writerow(["user", "", item["user"], item["count"]])
    for item in model.get("uncategorized", {}).get("items", []):
        out.writerow(["uncategorized_host", "uncategorized", item["host"], item["count"]])
    return buffer.getvalue()


# --------------------------------------------------------------------------- HTML

COLOURS = {
    "block": "#c0392b",
    "warn": "#e69f00",
    "log": "#0072b2",
    "allow": "#009e73",
}
_OTHER_COLOUR = "#7f7f7f"

_CSS = """
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif;
color:#1d2430;margin:0;background:#f4f5f7}
main{max-width:1080px;margin:0 auto;padding:28px 32px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;
border-bottom:2px solid #dde1e6;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#5b6472;margin:0 0 18px}.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:18px 0}
.kpi{flex:1 1 150px;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px}
.kpi b{display:block;font-size:24px}.kpi span{color:#5b6472;font-size:13px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.note{color:#5b6472;font-size:13px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 28px}
svg text{font:12px Arial,sans-serif;fill:#1d2430}
@media print{body{background:#fff}main{padding:0}h2{break-after:avoid}}
"""


def render_html(model: dict[str, Any]) -> str:
    """One self-contained page: inline CSS and SVG, no script, nothing fetched from a network."""
    e = html.escape
    r = model["report"]
    d = model["decisions"]
    by_action = d["by_action"]
    period = f"{_day(r['first_event'])} to {_day(r['last_event'])}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Internet use report, {e(period)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>Internet use under the acceptable-use policy</h1>",
        f'<p class="sub">{e(period)} &middot; times of day in {e(r["time_zone"])} &middot; '
        f"generated {e(r['generated'])} by aupgate from {len(r['files'])} audit file(s)</p>",
        '<div class="kpis">',
        _kpi(d["total"], "decisions"),
        _kpi(by_action.get("block", 0), "blocked"),
        _kpi(by_action.get("warn", 0), "warned"),
        _kpi(model["warn"]["continued"], "continued after a warning"),
        _kpi(model["policy"]["reload_failures"], "rejected policy edits"),
        "</div>",
        "<h2>Decisions by action</h2>",
        _legend(),
        _hbars([(a, {a: c}) for a, c in by_action.items()]),
        "<h2>Decisions by category</h2>",
        '<p class="note">Each request counts once per category of its site; '
        "<em>uncategorized</em> sites are on no category list.</p>",
        _legend(),
        _hbars([(c["category"], c["by_action"]) for c in model["categories"][:20]]),
        "<h2>Blocked requests by hour of day</h2>",
        _columns(model["blocks_by_hour"]),
    ]
    if len(model["by_day"]) > 1:
        parts += ["<h2>Decisions per day</h2>", _legend(), _days(model["by_day"])]
    parts.append("<h2>Most requested sites per category</h2>")
    parts.append('<div class="grid">')
    for cat in model["categories"][:20]:
        rows = [(i["host"], i["count"]) for i in cat["top_hosts"]["items"]]
        parts.append(
            f"<div><h3>{e(cat['category'])}</h3>"
            + _table(("site", "requests"), rows)
            + _approx_note(cat["top_hosts"])
            + "</div>"
        )
    parts.append("</div>")
    if "top_users" in model:
        parts += [
            "<h2>Most active users</h2>",
            _table(("user", "requests"), _rows(model["top_users"], "user")),
            _approx_note(model["top_users"]),
        ]
    warn = model["warn"]
    parts += [
        "<h2>Warnings and stated work reasons</h2>",
        f"<p>{warn['shown']} warning page(s) shown; {warn['continued']} continued after "
        "stating a work reason.</p>",
        _table(
            ("rule continued past", "times"),
            [(w["rule"], w["count"]) for w in warn["continued_by_rule"]],
        ),
        _table(("stated reason", "times"), _rows(warn["reasons"], "reason")),
        _approx_note(warn["reasons"]),
    ]
    pol = model["policy"]
    parts += [
        "<h2>Policy changes</h2>",
        f"<p>{pol['loads']} load(s) at start, {pol['reloads']} accepted change(s), "
        f"{pol['reload_failures']} rejected change(s) (the previous policy stayed in force).</p>",
        _table(
            ("time (UTC)", "event", "part", "version", "problems"),
            [
                (
                    ev["time"][:19].replace("T", " "),
                    ev["event"].replace("_", " "),
                    ev["part"] or "",
                    ev["digest"] or "",
                    f"{ev['errors']}: {ev['first_error']}" if ev["errors"] else "",
                )
                for ev in pol["events"]
            ],
        ),
    ]
    h = model["health"]
    parts += [
        "<h2>Gateway health</h2>",
        _table(
            ("", "count"),
            [
                ("requests blocked because the gateway itself failed", h["engine_errors"]),
                ("requests naming different sites (domain fronting)", h["domain_mismatches"]),
                ("gaps in the audit log", h["audit_gaps"]),
                ("events lost in those gaps", h["lost"]),
            ],
        ),
    ]
    if "uncategorized" in model:
        parts += [
            "<h2>Most requested uncategorized sites</h2>",
            '<p class="note">Candidates for the category lists.</p>',
            _table(("site", "requests"), _rows(model["uncategorized"], "host")),
            _approx_note(model["uncategorized"]),
        ]
    if not r["by_user"]:
        parts.append(
            '<p class="note">This report names no users. An investigation that needs them '
            "runs <code>aupgate report --by-user</code>.</p>"
        )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _rows(top: dict[str, Any], name: str) -> list[tuple[str, int]]:
    return [(item[name], item["count"]) for item in top["items"]]


def _day(key: str | None) -> str:
    return key[:10] if key else "-"


def _kpi(value: int, label: str) -> str:
    return f'<div class="kpi"><b>{value:,}</b><span>{html.escape(label)}</span></div>'


def _legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{a}</span>' for a, c in COLOURS.items())
    items += f'<span><i style="background:{_OTHER_COLOUR}"></i>refused or failed</span>'
    return f'<p class="legend">{items}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    e = html.escape
    th = "".join(
        f'<th class="n">{e(h)}</th>'
        if i == len(head) - 1 and len(head) == 2
        else f"<th>{e(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, int):
                cells.append(f'<td class="n">{value:,}</td>')
            else:
                cells.append(f"<td>{e(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _approx_note(top: dict[str, Any]) -> str:
    if not top["approximate"]:
        return ""
    return (
        f'<p class="note">Approximate: too many distinct entries to count each; counts may be '
        f"low by up to {top['error_bound']:,}.</p>"
    )


def _hbars(rows: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Horizontal bars, stacked by action: one row per label."""
    if not rows:
        return '<p class="note">No decisions in this period.</p>'
    e = html.escape
    width, label_w, bar_h, gap = 1000, 190, 22, 8
    peak = max(sum(counts.values()) for _, counts in rows) or 1
    scale = (width - label_w - 90) / peak
    height = len(rows) * (bar_h + gap) + gap
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="bar chart">'
    ]
    for index, (label, counts) in enumerate(rows):
        y = gap + index * (bar_h + gap)
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{e(label)}</text>'
        )
        x = float(label_w)
        for action, count in counts.items():
            w = count * scale
            if w > 0:
                colour = COLOURS.get(action, _OTHER_COLOUR)
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
                    f'fill="{colour}"><title>{e(label)}: {count:,} {e(action)}</title></rect>'
                )
                x += w
        out.append(
            f'<text x="{x + 6:.1f}" y="{y + bar_h * 0.7:.1f}">{sum(counts.values()):,}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _columns(values: Sequence[int]) -> str:
    """Blocks per hour of day: 24 columns in the block colour."""
    width, height, left, bottom, top = 1000, 260, 50, 28, 14
    peak = max(values) or 1
    step = (width - left - 10) / len(values)
    inner = height - bottom - top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="blocked requests by hour of day">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#9aa3ad"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak:,}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for hour, count in enumerate(values):
        x = left + hour * step
        h = inner * count / peak
        if count:
            out.append(
                f'<rect x="{x + 3:.1f}" y="{height - bottom - h:.1f}" width="{step - 6:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS["block"]}"><title>{hour:02d}:00 '
                f"{count:,} blocked</title></rect>"
            )
        out.append(
            f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle">{hour:02d}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _days(days: Sequence[dict[str, Any]]) -> str:
    """Decisions per day, stacked by action."""
    shown = days[-366:]
    width, height, left, bottom, top = 1000, 240, 60, 30, 12
    peak = max(sum(d["by_action"].values()) for d in shown) or 1
    step = (width - left - 10) / len(shown)
    inner = height - bottom - top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="decisions per day">',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak:,}</text>',
    ]
    label_every = max(1, len(shown) // 10)
    for index, day in enumerate(shown):
        x = left + index * step
        y = float(height - bottom)
        for action in (*ACTIONS, *(k for k in day["by_action"] if k not in ACTIONS)):
            count = day["by_action"].get(action, 0)
            if not count:
                continue
            h = inner * count / peak
            y -= h
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(action, _OTHER_COLOUR)}"/>'
            )
        if index % label_every == 0:
            out.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle">'
                f"{html.escape(day['date'][5:])}</text>"
            )
    out.append("</svg>")
    return "".join(out)


RENDERERS = {
    "table": render_table,
    "csv": render_csv,
    "html": render_html,
}


# --------------------------------------------------------------------------- command


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report` on the CLI's subparsers."""
    report: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="summarise audit logs over a period", description=__doc__.splitlines()[0]
    )
    report.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audit files (.gz ok)")
    report.add_argument("--since", help="from: 2h, 7d back, or an ISO-8601 time (UTC default)")
    report.add_argument("--until", help="before: as --since")
    report.add_argument("--format", choices=FORMATS, default="table", help="(default: table)")
    report.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    report.add_argument(
        "--by-user", action="store_true", help="name users (top users overall and per category)"
    )
    report.add_argument(
        "--uncategorized", action="store_true", help="list the most requested uncategorized hosts"
    )
    report.add_argument("--top", type=int, default=10, help="entries per top list (default: 10)")
    report.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes for plain files (default: 1); memory grows with each",
    )
    report.add_argument(
        "--tz", help="IANA time zone for hours and days, e.g. America/Chicago (default: local)"
    )
    report.set_defaults(func=cmd_report)
    return report


def cmd_report(args: argparse.Namespace) -> int:
    try:
        return run_report(args, sys.stdout, sys.stderr, now=datetime.now(UTC))
    except ReviewError as exc:
        print(f"aupgate report: {exc}", file=sys.stderr)
        return 2


def options_from(args: argparse.Namespace, now: datetime) -> Options:
    zone: tzinfo | None = None
    zone_name = os.environ.get("TZ") or "local time"
    if args.tz:
        try:
            zone = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ReviewError(f"--tz: unknown time zone '{args.tz}'") from exc
        zone_name = args.tz
    if args.top < 1:
        raise ReviewError("--top must be at least 1")
    return Options(
        since=parse_when(args.since, now) if args.since else None,
        until=parse_when(args.until, now) if args.until else None,
        zone=zone,
        zone_name=zone_name,
        by_user=args.by_user,
        uncategorized=args.uncategorized,
        top=args.top,
    )


def run_report(args: argparse.Namespace, out: TextIO, progress: TextIO, *, now: datetime) -> int:
    """Summarise `args.files` and write the chosen format to `-o` or `out`; 0 on success."""
    options = options_from(args, now)
    for path in args.files:
        if not path.exists():
            raise ReviewError(f"{path}: no such file")
    if args.jobs < 1:
        raise ReviewError("--jobs must be at least 1")
    summary = summarise(args.files, options, progress=progress, jobs=args.jobs)
    model = summary.to_json([str(p) for p in args.files], now)
    if args.format == "json":
        text = json.dumps(model, indent=2) + "\n"
    else:
        text = RENDERERS[args.format](model)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return 0
