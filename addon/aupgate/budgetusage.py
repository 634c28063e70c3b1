"""A gateway process's view of personal-use budgets: the shared counts as last read from the
database, plus what this process counted since (not yet written).

The event loop asks `used` and `note_*` on every request a budget counts; the flusher thread
takes what is pending (`take`), writes it to the database, reads every subject's counts back and
`publish`es them. So the view is never staler than one flush interval of this process plus one
of the others (docs/policy-lifecycle.md, "Budgets"), and a minute another process counted too
may be counted twice until the next publish (never more than the minutes of one interval).

Pure: the minute and day come from the caller, the database is someone else's.
"""

from __future__ import annotations

import threading

from .budgetstore import Usage, UsageKey

__all__ = ["BudgetUsage"]


class BudgetUsage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[UsageKey, tuple[int, int | None, int]] = {}  # minutes, last, bytes
        self._minutes: dict[UsageKey, set[int]] = {}  # counted here, not yet published
        self._bytes: dict[UsageKey, int] = {}
        self._inflight: tuple[dict[UsageKey, set[int]], dict[UsageKey, int]] = ({}, {})
        self._written = True  # the in-flight batch reached the database

    def used(self, key: UsageKey) -> tuple[int, int]:
        """(minutes, bytes) used so far today, as far as this process knows."""
        minutes, _last, size = self._shared.get(key, (0, None, 0))
        pending, inflight = self._minutes.get(key), self._inflight[0].get(key)
        minutes += (len(pending) if pending else 0) + (len(inflight) if inflight else 0)
        size += self._bytes.get(key, 0) + self._inflight[1].get(key, 0)
        return minutes, size

    def counted(self, key: UsageKey, minute: int) -> bool:
        """Whether `minute` is already counted for this subject (here, or by the last read)."""
        shared = self._shared.get(key)
        if shared is not None and shared[1] == minute:
            return True
        pending, inflight = self._minutes.get(key), self._inflight[0].get(key)
        return bool((pending and minute in pending) or (inflight and minute in inflight))

    def note_minute(self, key: UsageKey, minute: int) -> None:
        with self._lock:
            self._minutes.setdefault(key, set()).add(minute)

    def note_bytes(self, key: UsageKey, size: int) -> None:
        if size > 0:
            with self._lock:
                self._bytes[key] = self._bytes.get(key, 0) + size

    def take(self) -> tuple[list[tuple[str, str, str, str, int]],
                            list[tuple[str, str, str, str, int]]]:
        """What is pending, as rows for `BudgetStore.record`; it stays counted (in flight) until
        the next `publish`."""
        with self._lock:
            minutes, self._minutes = self._minutes, {}
            sizes, self._bytes = self._bytes, {}
            if not self._written:  # the last write failed: its batch goes again
                old_minutes, old_sizes = self._inflight
                for key, found in old_minutes.items():
                    minutes.setdefault(key, set()).update(found)
                for key, size in old_sizes.items():
                    sizes[key] = sizes.get(key, 0) + size
            self._inflight = (minutes, sizes)
            self._written = False
        return ([(*key, minute) for key, found in minutes.items() for minute in found],
                [(*key, size) for key, size in sizes.items()])

    def written(self) -> None:
        """The batch `take` gave is in the database (never to be sent again)."""
        self._written = True

    def publish(self, usage: list[Usage]) -> None:
        """The counts just read back (the in-flight batch is in them)."""
        shared = {(u.agency, u.budget, u.subject, u.day): (u.minutes, u.last_minute, u.bytes)
                  for u in usage}
        with self._lock:
            self._shared = shared
            self._inflight = ({}, {})
