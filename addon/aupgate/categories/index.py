"""The question every request asks of category data, and the rules its answer follows.

Matching follows squidGuard, which the UT1 lists are written for: a domain entry covers the host
and all its subdomains on label boundaries; a URL entry `host/path` covers requests to that host
(or a subdomain) whose path starts with the entry's path. The most specific entry wins, so
`ads.netlog.com` (advertising) beats `netlog.com` (social networking), and the losing categories
are still reported in `all_categories`. Corrections (`corrections.py`, docs/categories.md) take
a category off the entries a list gives it wrongly, with a reason, before the winner is picked;
`matches` gives the corrected entries, `list_matches` the entries as the lists give them.

Two indexes answer it: `listindex.ListIndex`, built in memory straight from the lists (the
reference, and what tests build from a handful of entries), and `compiled.CompiledIndex`, one
file that `cache.load_index` compiles once and every process then reads in milliseconds.
`classification_of` is the definition both are held to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .corrections import Corrections
from .entries import Entry, Hit, rank

__all__ = ["NO_MATCH", "CategoryIndex", "Classification", "Hit", "classification_of"]


@dataclass(frozen=True, slots=True)
class Classification:
    """What the lists say about one request.

    Attributes:
        categories: the winning (most specific) entry's categories, sorted; several when several
            lists carry that same entry (bet365.com is gambling and malware-phishing).
        all_categories: every category of every matching entry, sorted, for audit and explain.
        matched: the winning entry, `bet365.com` or `colombia.com/radio`; None when nothing
            matched.
    """

    categories: tuple[str, ...]
    all_categories: tuple[str, ...]
    matched: str | None


NO_MATCH = Classification((), (), None)


def classification_of(hits: Iterable[Hit]) -> Classification:
    """The classification a set of matching entries gives, by the rules in docs/categories.md.

    The indexes compute this faster their own way; this is the definition they must agree with,
    and what corrections and agency overrides use once they have changed the set of hits.
    """
    by_entry: dict[Entry, set[str]] = {}
    for entry, categories in hits:
        by_entry.setdefault(entry, set()).update(categories)
    if not by_entry:
        return NO_MATCH
    best = max(by_entry, key=rank)
    union = tuple(sorted({c for categories in by_entry.values() for c in categories}))
    return Classification(tuple(sorted(by_entry[best])), union, str(best))


class CategoryIndex(ABC):
    """What the engine asks of category data: `classify` for every request, `matches` to explain.

    `cache.load_index` gives the compiled index; `ListIndex.from_entries` builds one in memory
    from a few entries (tests, documentation examples). Both answer identically; the property
    tests hold them to `classification_of`.
    """

    __slots__ = ()

    @abstractmethod
    def classify(self, host: str, path: str = "/") -> Classification:
        """Classify a request by its normalised host and path (`path?query` lets URL entries
        with a query part match)."""

    @property
    @abstractmethod
    def corrections(self) -> Corrections:
        """The corrections applied to the lists (none unless sources.yaml names a file)."""

    @abstractmethod
    def list_matches(self, host: str, path: str = "/") -> list[Hit]:
        """Every list entry that matches the request, as the lists give it (no corrections),
        in no particular order."""

    @abstractmethod
    def list_entries_under(self, entry: Entry) -> Iterator[Hit]:
        """Every list entry at or below `entry` (its host and subdomains, its path prefix), as
        the lists give it: what a correction with `subdomains` reaches."""

    def matches(self, host: str, path: str = "/") -> list[Hit]:
        """Every entry that matches the request, corrections applied, in no particular order."""
        hits = self.list_matches(host, path)
        corrections = self.corrections
        if corrections and corrections.touches(host):
            return corrections.apply(hits, host, path)
        return hits

    @abstractmethod
    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        """The categories the lists give exactly this entry (before corrections); () when it is
        on no list."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of distinct entries (a host with a domain and URL entries counts each)."""

    @abstractmethod
    def category_counts(self) -> dict[str, int]:
        """Distinct entries carrying each category, in CATEGORY_IDS order (before corrections)."""
