"""Decisions already taken in the current minute, looked up by what the request says.

A page load asks about the same few URLs from the same client many times, and the proxy's budget
per request is tens of microseconds (docs/benchmarks.md). The core's own memos make a decision
cheap; this one skips it: a request whose agency, client, login and URL parts were decided
earlier in the same minute gets that decision, without building a `Url` or calling the engine.

Why this is exact, not approximate: a decision depends on the policy set and category index (the
memo belongs to one `Snapshot` and is emptied when it is replaced), on the request's URL, client
and user (the key), and on time only through the agency's schedule window and the date a grant
expires, both of which change on whole minutes. The memo is emptied when the minute changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..engine import Decision
from ..gateway import Snapshot
from ..memo import remember
from ..normalise import Url

_LIMIT = 8192  # distinct requests remembered per minute; emptied, not evicted, when full

MemoKey = tuple[Any, ...]


class DecisionMemo:
    """(policy, client, user, scheme, host, port, path, query) -> (decision, url) for a minute.

    `fixed` freezes the clock (`aupgate_fixed_time`): every decision is taken at that moment, so
    the minute never changes.
    """

    __slots__ = ("_clock", "_entries", "_fixed", "_minute", "_snapshot", "_wall")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # seconds since the epoch, as the adapter's own clock reads them
        self._wall = clock
        self._entries: dict[MemoKey, tuple[Decision, Url]] = {}
        self._fixed = False
        self._minute = -1
        self._snapshot: Snapshot | None = None

    def freeze(self, fixed: datetime | None) -> None:
        """Decisions are taken at `fixed` from now on (None: the real clock); all are forgotten."""
        self._fixed = fixed is not None
        self._entries.clear()

    def use_clock(self, clock: Callable[[], float] | None) -> None:
        """Minutes by this clock from now on (the policy clock `aupgate_clock_from` runs; None:
        the clock given at first); all are forgotten."""
        self._clock = clock or self._wall
        self._entries.clear()

    def get(self, snapshot: Snapshot, key: MemoKey) -> tuple[Decision, Url] | None:
        """The decision remembered for `key`, if taken under `snapshot` in this minute."""
        minute = -1 if self._fixed else int(self._clock()) // 60
        if minute != self._minute or snapshot is not self._snapshot:
            self._entries.clear()
            self._minute = minute
            self._snapshot = snapshot
            return None
        return self._entries.get(key)

    def put(self, key: MemoKey, decision: Decision, url: Url) -> None:
        """Remember a decision just taken under the snapshot and minute `get` last saw."""
        remember(self._entries, key, (decision, url), _LIMIT)
