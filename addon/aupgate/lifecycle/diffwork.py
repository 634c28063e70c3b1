"""`aupgate diff`: a block of past requests decided under the policies in force and under the
candidate, counted into a `DiffSummary`, and (if asked) each changed request as a JSON line.

Blocks are independent (`parallel.ordered_map` runs them in several processes); the only state
that crosses a block boundary, the frozen policy clock an audit file may announce, is handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from aupgate.engine import Decision
from aupgate.errors import UrlError

from .batch import BATCH_FIELDS
from .diffsum import DiffSummary
from .replay import clock_of, is_decision_line, replayed
from .requests import RequestDecider, RequestError

__all__ = ["DiffState", "diff_audit_block", "diff_batch_block", "fixed_time_after"]

_CLOCK_MARK = b'"fixed_time":'


@dataclass
class DiffState:
    """What every block needs: both deciders, and what to report."""

    current: RequestDecider
    candidate: RequestDecider
    by_user: bool = False
    changes: bool = False  # write each changed request


def fixed_time_after(data: bytes, fixed: str | None) -> str | None:
    """The frozen policy clock in force after this block, given the one before it."""
    if _CLOCK_MARK not in data:
        return fixed
    for raw in data.split(b"\n"):
        if _CLOCK_MARK in raw:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(record) is dict:
                clock = clock_of(record)
                if clock is not False:
                    fixed = clock if isinstance(clock, str) else None
    return fixed


def diff_audit_block(state: DiffState, data: bytes, first_line: int, source: str,
                     fixed: str | None) -> tuple[DiffSummary, bytes]:
    summary = DiffSummary(by_user=state.by_user)
    out: list[bytes] = []
    loads = orjson.loads
    number = first_line - 1
    for raw in data.split(b"\n"):
        number += 1
        if not raw or raw.isspace():
            continue
        summary.lines += 1
        if is_decision_line(raw) is False:
            if _CLOCK_MARK in raw:
                fixed = fixed_time_after(raw, fixed)
            summary.skipped += 1
            continue
        try:
            record = loads(raw)
        except orjson.JSONDecodeError:
            summary.unreadable += 1
            continue
        if type(record) is not dict:
            summary.unreadable += 1
            continue
        request = replayed(record, fixed)
        if request is None:
            clock = clock_of(record)
            if clock is not False:
                fixed = clock if isinstance(clock, str) else None
            summary.skipped += 1
            continue
        where = f"{source}:{number}"
        try:
            old = state.current.decide(request.url, agency=request.agency, at=request.at,
                                       user=request.user, client=request.client,
                                       content=request.content, method=request.method,
                                       upload=request.upload)
            new = state.candidate.decide(request.url, agency=request.agency, at=request.at,
                                         user=request.user, client=request.client,
                                         content=request.content, method=request.method,
                                         upload=request.upload)
        except (RequestError, UrlError) as exc:
            summary.problem(f"{where}: {exc}")
            continue
        if request.logged_action is not None and request.logged_action != old.action:
            summary.drift += 1
        kind = summary.count(request.phase, old, new, old.host, old.user or request.client)
        if kind is not None and state.changes:
            out.append(_change_line(source, number, request.at, request.phase, old, new, kind,
                                    old.user, request.client, state.by_user))
    return summary, b"".join(out)


def diff_batch_block(state: DiffState, data: bytes, first_line: int,
                     source: str) -> tuple[DiffSummary, bytes]:
    summary = DiffSummary(by_user=state.by_user)
    out: list[bytes] = []
    number = first_line - 1
    for raw in data.split(b"\n"):
        number += 1
        if not raw or raw.isspace():
            continue
        summary.lines += 1
        where = f"{source}:{number}"
        try:
            request = orjson.loads(raw)
            if type(request) is not dict or not request.keys() <= BATCH_FIELDS:
                raise RequestError("each line must be a JSON object of "
                                   + ", ".join(sorted(BATCH_FIELDS)))
            if type(request.get("url")) is not str or any(
                    v is not None and type(v) is not str for v in request.values()):
                raise RequestError("'url' is required and every field must be text")
            old = state.current.decide(**request)
            new = state.candidate.decide(**request)
        except (RequestError, UrlError, orjson.JSONDecodeError) as exc:
            summary.problem(f"{where}: {exc}")
            continue
        user, client = old.user, request.get("client")
        kind = summary.count("request", old, new, old.host, user or client)
        if kind is not None and state.changes:
            at = request.get("at") or state.current.default_moment.isoformat()
            out.append(_change_line(source, number, at, "request", old, new, kind, user,
                                    client, state.by_user))
    return summary, b"".join(out)


def _change_line(source: str, number: int, at: str, phase: str, old: Decision, new: Decision,
                 kind: str, user: str | None, client: str | None, by_user: bool) -> bytes:
    line: dict[str, Any] = {
        "file": source, "line": number, "time": at, "phase": phase, "agency": old.agency,
        "url": old.url, "categories": list(old.categories), "change": kind,
        "old": {"action": old.action, "rule": old.rule, "clauses": list(old.clauses)},
        "new": {"action": new.action, "rule": new.rule, "clauses": list(new.clauses)},
    }
    if by_user:
        line["user"] = user
        line["client"] = client
    return orjson.dumps(line) + b"\n"
