"""Counting in bounded memory: exact until full, then the Misra-Gries summary."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_CAP", "TopCounter", "bump"]

DEFAULT_CAP = 10_000


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


def bump(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1
