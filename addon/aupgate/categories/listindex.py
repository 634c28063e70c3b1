"""`ListIndex`: the category lists in Python dicts, the reference every other index must match.

Seconds to build and about 100 MiB per process for the shipped lists, which is why the proxy uses
the compiled index (`compiled.py`); tests build this one from a handful of entries, and property
tests hold the compiled index to it. Requests on a host that a correction reaches are answered
the slow, literal way: `classification_of` over the corrected matches.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from pathlib import Path

from aupgate.errors import CategoryError, Problem
from aupgate.hostname import is_under

from .corrections import NO_CORRECTIONS, Corrections, stale_problems
from .entries import Entry, EntryError, parse_entry
from .ids import CATEGORY_IDS, category_problem
from .index import NO_MATCH, CategoryIndex, Classification, Hit, classification_of
from .loadreport import LoadReport, SourceReport
from .readers import Rejected, Skipped, read_entries, rejection
from .sources import SourceSpec, read_corrections_file, read_source_config

__all__ = ["ListIndex", "load_lists"]


class _UrlNode:
    """A host that carries URL-prefix entries (and perhaps a domain entry too).

    Kept apart from the plain `host -> categories` values so that the common case, a host with
    only a domain entry or none, costs one dict lookup per label. The paths are sorted so that the
    prefixes of a request path are found by bisection: docs.google.com alone has ~500 entries.
    """

    __slots__ = ("categories", "domain", "paths")

    def __init__(
        self,
        domain: tuple[str, ...] | None,
        paths: tuple[str, ...],
        categories: tuple[tuple[str, ...], ...],
    ) -> None:
        self.domain = domain
        self.paths = paths  # sorted
        self.categories = categories  # categories[i] belongs to paths[i]

    def matches(self, path: str) -> list[int]:
        """Indices of every entry path that is a prefix of `path`, longest first.

        The greatest entry <= a target is the target's longest prefix among the entries if it is
        a prefix at all; if not, every prefix of the target that is an entry is also a prefix of
        their common prefix, so the search continues from that, below the entry just seen.
        """
        paths = self.paths
        found: list[int] = []
        target, high = path, len(paths)
        while target and high:
            i = bisect.bisect_right(paths, target, 0, high) - 1
            if i < 0:
                break
            entry = paths[i]
            if target.startswith(entry):
                found.append(i)
                target = entry[:-1]
            else:
                target = _common_prefix(entry, target)
            high = i
        return found


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


_Node = tuple[str, ...] | _UrlNode


class ListIndex(CategoryIndex):
    """Domain and URL-prefix entries with their categories, in Python dicts.

    Built straight from the lists (`load_lists`) or from pairs (`from_entries`). Fast to query but
    seconds to build and about 100 MiB per process for the shipped lists, which is why the proxy
    uses the compiled index; this one is the reference the compiled index is tested against.
    """

    __slots__ = ("_chains", "_corrections", "_counts", "_nodes")

    def __init__(
        self,
        nodes: dict[str, _Node],
        counts: dict[str, int],
        corrections: Corrections = NO_CORRECTIONS,
    ) -> None:
        self._nodes = nodes
        self._counts = counts
        self._corrections = corrections
        # Everything about a request except its path depends only on the most specific host with
        # entries, so that is worked out once per such host and remembered (at most one per entry).
        self._chains: dict[str, _Chain] = {}

    @classmethod
    def from_entries(
        cls,
        pairs: Iterable[tuple[str, str]],
        *,
        corrections: Corrections = NO_CORRECTIONS,
    ) -> ListIndex:
        """Build an index from `(entry, category)` pairs, entries in plain-list syntax.

        Args:
            corrections: corrections to apply, as a corrections file gives them.

        Raises:
            CategoryError: an entry that cannot be used or a category that is not in CATEGORY_IDS.
        """
        builder = _Builder()
        problems = []
        for number, (text, category) in enumerate(pairs, start=1):
            if message := category_problem(category):
                problems.append(Problem("<entries>", number, "category", message))
                continue
            try:
                builder.add(parse_entry(text), category)
            except EntryError as e:
                problems.append(Problem("<entries>", number, "entry", f"cannot use {text!r}: {e}"))
        if problems:
            raise CategoryError(problems)
        return builder.build(corrections)

    @property
    def corrections(self) -> Corrections:
        return self._corrections

    def __len__(self) -> int:
        """The number of distinct entries (a host with a domain and URL entries counts each)."""
        return sum(
            bool(n) if isinstance(n, tuple) else (n.domain is not None) + len(n.paths)
            for n in self._nodes.values()
        )

    def _domain(self, host: str) -> tuple[str, ...]:
        node = self._nodes.get(host)
        return (node.domain or ()) if isinstance(node, _UrlNode) else (node or ())

    def category_counts(self) -> dict[str, int]:
        """Distinct entries carrying each category, in CATEGORY_IDS order."""
        return dict(self._counts)

    def classify(self, host: str, path: str = "/") -> Classification:
        """Classify a request by its normalised host and path.

        Looks up the host's suffixes (`com`, `example.com`, `b.example.com`...), so label
        boundaries come for free and the longest suffix that is an entry is the most specific
        domain entry. What follows from that host is worked out once and remembered; only URL
        prefixes depend on the path.

        Args:
            host: the canonical host (lower case, no trailing dot), as `normalise_host` gives.
            path: the request path, starting with "/"; append `?query` to let URL entries with a
                query part match.
        """
        if self._corrections and self._corrections.touches(host):
            return classification_of(self.matches(host, path))
        # From the top label down: every parent of an entry is a key (with an empty tuple when it
        # is no entry itself), so the first suffix that is not a key ends the search. A host
        # matching nothing usually costs two lookups, however many labels it has.
        nodes = self._nodes
        node: _Node | None = None
        first = ""
        dot = host.rfind(".")
        while True:
            suffix = host[dot + 1 :]
            found = nodes.get(suffix)
            if found is None:
                break
            if found:
                node, first = found, suffix
            if dot < 0:
                break
            dot = host.rfind(".", 0, dot)
        if node is None:
            return NO_MATCH
        chain = self._chains.get(first)
        if chain is None:
            chain = self._chain(first, node)
        if not chain.url_nodes:
            return chain.domain_result
        return _with_urls(chain, path)

    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        if entry.path is None:
            return self._domain(entry.host)
        node = self._nodes.get(entry.host)
        if not isinstance(node, _UrlNode):
            return ()
        i = bisect.bisect_left(node.paths, entry.path)
        return node.categories[i] if i < len(node.paths) and node.paths[i] == entry.path else ()

    def list_entries_under(self, entry: Entry) -> Iterator[Hit]:
        """A scan of every host (the reference; the compiled index walks its trie)."""
        for host, node in self._nodes.items():
            if not is_under(host, entry.host):
                continue
            if entry.path is None and (domain := self._domain(host)):
                yield Hit(Entry(host), domain)
            if isinstance(node, _UrlNode):
                for path, categories in zip(node.paths, node.categories, strict=True):
                    if entry.path is None or path.startswith(entry.path):
                        yield Hit(Entry(host, path), categories)

    def list_matches(self, host: str, path: str = "/") -> list[Hit]:
        """Every entry on the host's suffixes whose path (if any) is a prefix of `path`."""
        hits: list[Hit] = []
        suffix = host
        while True:
            node = self._nodes.get(suffix)
            if isinstance(node, _UrlNode):
                if node.domain is not None:
                    hits.append(Hit(Entry(suffix), node.domain))
                hits.extend(
                    Hit(Entry(suffix, node.paths[i]), node.categories[i])
                    for i in node.matches(path)
                )
            elif node:
                hits.append(Hit(Entry(suffix), node))
            dot = suffix.find(".")
            if dot < 0:
                return hits
            suffix = suffix[dot + 1 :]

    def _chain(self, first: str, node: _Node | None) -> _Chain:
        """Walk from the most specific host with entries to the top, once, and remember it."""
        domain_win: str | None = None
        winner: tuple[str, ...] = ()
        matched: list[tuple[str, ...]] = []
        url_nodes: list[tuple[str, _UrlNode]] = []
        suffix = first
        while True:
            if isinstance(node, _UrlNode):
                url_nodes.append((suffix, node))
                domain = node.domain
            else:
                domain = node or None  # () marks a parent of entries, not an entry
            if domain is not None:
                matched.append(domain)
                if domain_win is None:
                    domain_win, winner = suffix, domain
            dot = suffix.find(".")
            if dot < 0:
                break
            suffix = suffix[dot + 1 :]
            node = self._nodes.get(suffix)
        chain = _Chain(_classification(domain_win, winner, matched), tuple(url_nodes))
        self._chains[first] = chain
        return chain


class _Chain:
    """What all requests whose most specific host with entries is the same host share."""

    __slots__ = ("domain_result", "url_nodes")

    def __init__(
        self, domain_result: Classification, url_nodes: tuple[tuple[str, _UrlNode], ...]
    ) -> None:
        self.domain_result = domain_result  # the answer when no URL entry matches the path
        self.url_nodes = url_nodes  # hosts on the chain with URL entries, most specific first


def _with_urls(chain: _Chain, path: str) -> Classification:
    """The answer when URL entries are on the chain: any URL match beats every domain match."""
    url_win: str | None = None
    winner: tuple[str, ...] = ()
    matched: list[tuple[str, ...]] = []
    for suffix, node in chain.url_nodes:
        hits = node.matches(path)
        if hits and url_win is None:
            url_win, winner = suffix + node.paths[hits[0]], node.categories[hits[0]]
        matched.extend(node.categories[i] for i in hits)
    if url_win is None:
        return chain.domain_result
    return _classification(url_win, winner, [*matched, chain.domain_result.all_categories])


def _classification(
    matched_entry: str | None, winner: tuple[str, ...], matched: list[tuple[str, ...]]
) -> Classification:
    """The result for a winning entry; interned category tuples make the common case cheap."""
    if matched_entry is None:
        return NO_MATCH
    if all(m is winner or not m for m in matched):
        return Classification(winner, winner, matched_entry)
    union = tuple(sorted({c for categories in matched for c in categories}))
    return Classification(winner, union, matched_entry)


class _Builder:
    """Accumulates entries; category tuples are interned so 400k entries share a few dozen."""

    def __init__(self) -> None:
        self._domains: dict[str, tuple[str, ...]] = {}
        self._urls: dict[str, dict[str, tuple[str, ...]]] = {}
        self._tuples: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}

    def add(self, entry: Entry, category: str) -> None:
        if entry.path is None:
            old = self._domains.get(entry.host, ())
            self._domains[entry.host] = self._with(old, category)
        else:
            paths = self._urls.setdefault(entry.host, {})
            paths[entry.path] = self._with(paths.get(entry.path, ()), category)

    def _with(self, categories: tuple[str, ...], category: str) -> tuple[str, ...]:
        key = (categories, category)
        interned = self._tuples.get(key)
        if interned is None:
            interned = tuple(sorted({*categories, category}))
            # Reuse an equal tuple reached by another route: (a,)+b and (b,)+a are one object.
            for existing in self._tuples.values():
                if existing == interned:
                    interned = existing
                    break
            self._tuples[key] = interned
        return interned

    def build(self, corrections: Corrections = NO_CORRECTIONS) -> ListIndex:
        nodes: dict[str, _Node] = dict(self._domains)
        for host, paths in self._urls.items():
            ordered = sorted(paths)
            categories = tuple(paths[p] for p in ordered)
            nodes[host] = _UrlNode(self._domains.get(host), tuple(ordered), categories)
        for entry in list(nodes):
            _add_parents(nodes, entry)
        return ListIndex(nodes, self._count(), corrections)

    def _count(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORY_IDS, 0)
        for categories in self._domains.values():
            for c in categories:
                counts[c] += 1
        for paths in self._urls.values():
            for categories in paths.values():
                for c in categories:
                    counts[c] += 1
        return counts


def _add_parents(nodes: dict[str, _Node], host: str) -> None:
    """Mark every parent of an entry with (), so `classify` can stop at the first unknown suffix.

    A key already present had its parents marked when it was added (or will have, if an entry).
    """
    dot = host.find(".")
    while dot >= 0:
        host = host[dot + 1 :]
        if host in nodes:
            return
        nodes[host] = ()
        dot = host.find(".")


def load_lists(sources_file: Path) -> tuple[ListIndex, LoadReport]:
    """Read sources.yaml and every list it names into an in-memory `ListIndex`.

    Lines that cannot be used are reported as warnings and the rest is loaded: a list of 200,000
    entries with a few odd lines is still worth using.

    Raises:
        CategoryError: sources.yaml is invalid, or a list cannot be read at all.
    """
    config = read_source_config(sources_file)
    corrections = read_corrections_file(config.corrections)
    builder = _Builder()
    reports: list[SourceReport] = []
    problems: list[Problem] = []
    for spec in config.specs:
        reports.append(_load_source(spec, builder, problems))
    index = builder.build(corrections)
    problems += stale_problems(index)
    return index, LoadReport(tuple(reports), tuple(problems), index.category_counts())


def _load_source(spec: SourceSpec, builder: _Builder, problems: list[Problem]) -> SourceReport:
    """Feed one source into the builder, counting entries, rejections, skips and repeats."""
    seen: set[Entry] = set()
    entries = rejected = duplicates = skipped = 0
    for file, result in read_entries(spec.path, spec.format):
        if isinstance(result, Rejected):
            rejected += 1
            problems.append(rejection(file, result))
        elif isinstance(result, Skipped):
            skipped += 1
        elif result in seen:
            duplicates += 1
        else:
            seen.add(result)
            entries += 1
            builder.add(result, spec.category)
    return SourceReport(str(spec.path), spec.category, entries, rejected, duplicates, skipped)
