"""One category index answered once per request for both policy sets of `aupgate diff`.

`diff` decides every request twice, under the policies in force and under the candidate, with
the same category index. The engine remembers a site's facts per policy, so the second decision
would look the host up in the index again: the trie walk is the largest single cost of a
decision on replay input, where most hosts are seen once. `SharedIndex` wraps the index and
remembers what `classify` and `matches` (what an agency's category overrides read) answered for
the last requests, so the candidate's decision reuses the lookup the current policy's decision
made. The answers are the wrapped index's own (its data never changes while a diff runs), so
every decision is the one the plain index gives; `tests/test_lifecycle_sharedindex.py` holds
them equal.
"""

from __future__ import annotations

from collections.abc import Iterator

from aupgate.categories.corrections import Corrections
from aupgate.categories.entries import Entry, Hit
from aupgate.categories.index import CategoryIndex, Classification
from aupgate.memo import remember

__all__ = ["SharedIndex"]

_LIMIT = 1 << 16


class SharedIndex(CategoryIndex):
    """`index`, with `classify` and `matches` remembered per host and path (bounded)."""

    __slots__ = ("_classified", "_index", "_matched")

    def __init__(self, index: CategoryIndex) -> None:
        self._index = index
        self._classified: dict[tuple[str, str], Classification] = {}
        self._matched: dict[tuple[str, str], list[Hit]] = {}

    def classify(self, host: str, path: str = "/") -> Classification:
        key = (host, path)
        found = self._classified.get(key)
        if found is None:
            found = remember(self._classified, key, self._index.classify(host, path), _LIMIT)
        return found

    def matches(self, host: str, path: str = "/") -> list[Hit]:
        key = (host, path)
        found = self._matched.get(key)
        if found is None:
            found = remember(self._matched, key, self._index.matches(host, path), _LIMIT)
        return list(found)  # callers may change their list; the remembered one stays

    @property
    def corrections(self) -> Corrections:
        return self._index.corrections

    def list_matches(self, host: str, path: str = "/") -> list[Hit]:
        return self._index.list_matches(host, path)

    def list_entries_under(self, entry: Entry) -> Iterator[Hit]:
        return self._index.list_entries_under(entry)

    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        return self._index.categories_of(entry)

    def __len__(self) -> int:
        return len(self._index)

    def category_counts(self) -> dict[str, int]:
        return self._index.category_counts()
