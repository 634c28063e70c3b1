"""Reviewing audit logs: the events a question is about, in time order, one readable line each.

Several files are read at once in time order (a heap merge of the sorted streams: nothing is
loaded whole), keeping only the events a `Selection` is about; `format_event` gives the line an
administrator reads. `aupgate review` (cli/audit.py) is the command.
"""

from __future__ import annotations

import heapq
import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import orjson

from aupgate.hostname import is_under

from .chain import CHECKPOINT
from .envelope import HEAD, TIME_AT, time_key
from .reader import ReviewError, open_lines

__all__ = ["Record", "Selection", "format_event", "merged", "select"]

Record = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Selection:
    """Which events a review is about: every given condition must hold, any listed value will do."""

    agencies: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    clients: tuple[Network, ...] = ()
    categories: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()
    events: frozenset[str] = frozenset()
    since: str | None = None
    until: str | None = None

    def in_period(self, key: str) -> bool:
        return (self.since is None or key >= self.since) and (
            self.until is None or key < self.until
        )

    def matches(self, record: Record) -> bool:
        """Whether the event passes every filter; events without a filtered field do not.

        The audit file's own checkpoints (one a minute per worker) are shown only when asked
        for by name (`--event audit_checkpoint`): they say nothing about traffic.
        """
        if self.events and record.get("event") not in self.events:
            return False
        if not self.events and record.get("event") == CHECKPOINT:
            return False
        if self.agencies and record.get("agency") not in self.agencies:
            return False
        if self.actions and record.get("action") not in self.actions:
            return False
        if self.users:
            user = record.get("user")
            if not isinstance(user, str) or user.lower() not in self.users:
                return False
        if self.categories:
            cats = record.get("categories")
            if not isinstance(cats, list) or self.categories.isdisjoint(cats):
                return False
        if self.hosts:
            host = record.get("host") or record.get("sni")
            if not isinstance(host, str) or not any(is_under(host, h) for h in self.hosts):
                return False
        if self.clients:
            try:
                address = ipaddress.ip_address(str(record.get("client")))
            except ValueError:
                return False
            if not any(address in net for net in self.clients):
                return False
        return True


def select(lines: Iterable[bytes], selection: Selection) -> Iterator[tuple[str, bytes, Record]]:
    """(time key, raw line, record) of the lines that pass; damaged lines are skipped."""
    for raw in lines:
        if not raw.strip():
            continue
        if raw.startswith(HEAD) and not selection.in_period(raw[TIME_AT].decode()):
            continue  # the cheap pre-filter: most lines of a long log are out of the period
        try:
            record = orjson.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        key = time_key(raw, record)
        if selection.in_period(key) and selection.matches(record):
            yield key, raw, record


def _file_events(path: Path, selection: Selection) -> Iterator[tuple[str, bytes, Record]]:
    with open_lines(path) as handle:
        yield from select(handle, selection)


def merged(paths: Sequence[Path], selection: Selection) -> Iterator[tuple[str, bytes, Record]]:
    """The selected events of several time-ordered files, in time order (a streaming merge)."""
    for path in paths:
        if not path.exists():
            raise ReviewError(f"{path}: no such file")
    streams = [_file_events(path, selection) for path in paths]
    return heapq.merge(*streams, key=lambda item: item[0])


# --------------------------------------------------------------------------- printing

_COLOURS = {
    "block": "\x1b[1;31m",
    "warn": "\x1b[33m",
    "log": "\x1b[36m",
    "allow": "\x1b[32m",
    "alert": "\x1b[1;35m",
    "dim": "\x1b[2m",
}
_RESET = "\x1b[0m"
_ALERTS = frozenset({"engine_error", "policy_reload_failed", "audit_gap", "domain_mismatch"})
_SKIP = frozenset({"schema_version", "time", "event", "prev", "chain"})
_SUMMARISED = frozenset({"agency_digests", "category_counts"})
"""Mappings in start-up events, said in a word: their size (`aupgate review --json` has them)."""


def stamp_of(record: Record, zone: tzinfo | None) -> str:
    """The event's time in `zone` (UTC when None), to the second, with the zone's abbreviation."""
    text = str(record.get("time", ""))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text[:19].replace("T", " ") or "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone or UTC)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


def format_event(record: Record, *, colour: bool = False, zone: tzinfo | None = None) -> str:
    """One readable line: time, what happened, in which phase, to whom, where, under which rule
    (and the grant that relaxed it)."""
    stamp = stamp_of(record, zone)
    event = str(record.get("event", "?"))

    def paint(text: str, key: str) -> str:
        return f"{_COLOURS[key]}{text}{_RESET}" if colour else text

    if event == "access_request":
        who = "  ".join(str(record.get(k) or "-") for k in ("agency", "user", "client"))
        label = paint(f"{'ACCESS?':<8}", "alert")
        where = f"{record.get('host') or '-'}{record.get('path') or ''}"
        return (f"{stamp} {label} {'request':<8} {who}  {where}  rule {record.get('rule') or '-'}"
                f' ({record.get("action") or "-"}): "{record.get("explanation", "")}"')
    if event == "decision":
        continuing = record.get("phase") == "continue"
        action = "continue" if continuing else str(record.get("action") or record.get("enforced"))
        label = paint(f"{action.upper():<8}", record.get("action") or "dim")
        phase = str(record.get("phase") or "-")
        path = record.get("path") or ""
        where = f"{record.get('host') or '-'}{path if isinstance(path, str) else ''}"
        who = "  ".join(str(record.get(k) or "-") for k in ("agency", "user", "client"))
        cats = ",".join(record.get("categories") or []) or "-"
        if continuing and record.get("rule_continued"):
            rule = record.get("rule_continued") or "-"
            clauses = ",".join(record.get("clauses_continued") or [])
            tail = f'past {rule} [{clauses}]: "{record.get("work_reason", "")}"'
        elif continuing:
            tail = f"sent back: {record.get('continue_problem') or 'no pass given'}"
        else:
            clauses = ",".join(record.get("clauses") or [])
            tail = f"rule {record.get('rule') or '-'} [{clauses}] {_enforced(record)}"
            if record.get("grant"):
                tail += f" (relaxed by grant {record['grant']})"
            if record.get("upstream_error"):
                tail += f" ({record['upstream_error']}, status {record.get('status')})"
        return f"{stamp} {label} {phase:<8} {who}  {cats}  {where}  {tail}".rstrip()
    details = " ".join(
        f"{k}={len(v)}" if k in _SUMMARISED and isinstance(v, dict) else f"{k}={_short(v)}"
        for k, v in record.items() if k not in _SKIP and v not in (None, [], "", {})
    )
    label = paint(f"{event.upper():<8}", "alert" if event in _ALERTS else "dim")
    return f"{stamp} {label} {details}".rstrip()


def _enforced(record: Record) -> str:
    """What was done; a CONNECT that passed to show a page inside is "intercepted", not passed."""
    enforced = str(record.get("enforced", ""))
    if record.get("phase") == "connect" and enforced == "passed" and record.get(
            "action") in ("warn", "block"):
        return "intercepted (the page is shown inside the tunnel)"
    return enforced


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    text = str(value)
    return text[:16] if re.fullmatch(r"[0-9a-f]{64}", text) else text
