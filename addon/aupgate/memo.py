"""The one shape of every memo in aupgate: a dict that is emptied, not evicted, when full.

The engine, the compiled index, the schedule, the proxy's URL and decision memos and the report
each remember answers that are cheap to recompute and expensive to compute per request. Each
memo is bounded, so a client cannot grow the gateway's memory by asking many distinct questions,
and emptied at once when full: no eviction bookkeeping on the hot path, and a memo that refills
is as good as one that never emptied.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, limit: int) -> V:
    """Store `value` under `key`, emptying `memo` first when it holds `limit` entries; return it."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
