"""Corrections to the third-party lists, each with its reason (`aupgate/corrections.yaml`).

The lists under ut1/, blocklistproject/ and sinfonietta/ are copied unchanged (their licences want
the original recognisable, and a refresh must not undo a fix), so where a list files a site under
a category it does not belong to, the fix is a correction: which entries, `from` which category,
optionally `to` which one, whether it also reaches the entries listed below it (`subdomains`), and
why. sources.yaml names the file (`corrections:`); every agency gets the corrected lists, and an
agency's own overrides (its policy's `categories` key) apply after the corrections.

Meaning (docs/categories.md, "Corrections"): a correction acts like an entry of its own, ranked
like one. For a request at or under one of its entries, `from` is taken away from every matching
list entry that the correction's entry outranks or equals, and with `subdomains` from the matching
entries below it too; an entry left with no category no longer matches; `to` is added as an entry
at the correction's entry. Corrections apply in the order they are written. Only the set of
matching entries changes, never the matching rules, so the winner is then picked as usual.

This module is pure: `sources` reads the file and hands the data to `read_corrections`; the
indexes apply `Corrections.apply` to the entries that match a request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from aupgate.errors import Problem, Severity
from aupgate.yamlsource import FieldReader, kind_of, line_of

from .entries import Entry, EntryError, Hit, covers, parse_entry, rank
from .ids import UNCATEGORIZED, category_problem

__all__ = [
    "CORRECTION_KEYS",
    "NO_CORRECTIONS",
    "Applied",
    "Correction",
    "Corrections",
    "read_corrections",
    "stale_corrections",
    "stale_problems",
]

CORRECTION_KEYS = ("entries", "from", "to", "subdomains", "reason")
_NOT_A_LIST = f"'{UNCATEGORIZED}' is no list's category"


class Correction(NamedTuple):
    """One entry of one correction item, with where it was written."""

    scope: Entry
    source: str  # `from`: the category taken away
    target: str | None  # `to`: the category added at `scope`, if any
    subdomains: bool
    reason: str
    file: str
    line: int  # the item's line (`- entries: ...`)

    def affects(self, entry: Entry) -> bool:
        """Whether this correction takes `from` off `entry` (both matching the same request)."""
        return rank(entry) <= rank(self.scope) or (
            self.subdomains and covers(self.scope, entry.host, entry.path)
        )

    def __str__(self) -> str:
        move = f"{self.source} -> {self.target}" if self.target else f"{self.source} removed"
        return f"{self.scope} {move} ({self.file}:{self.line}: {self.reason})"


class Applied(NamedTuple):
    """What one correction did to one request: the entries it took its `from` off."""

    correction: Correction
    changed: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Corrections:
    """Every correction, in file order, indexed by the host of its entry."""

    items: tuple[Correction, ...] = ()
    _by_host: Mapping[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, items: Iterable[Correction]) -> Corrections:
        items = tuple(items)
        by_host: dict[str, list[int]] = {}
        for number, item in enumerate(items):
            by_host.setdefault(item.scope.host, []).append(number)
        return cls(items, {host: tuple(numbers) for host, numbers in by_host.items()})

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def hosts(self) -> frozenset[str]:
        """The hosts of the corrections' entries: a request under none of them is untouched."""
        return frozenset(self._by_host)

    def touches(self, host: str) -> bool:
        """Whether some correction's entry is on `host` or a parent of it."""
        return any(True for _ in self._suffixes(host))

    def _suffixes(self, host: str) -> Iterator[tuple[int, ...]]:
        by_host = self._by_host
        while True:
            numbers = by_host.get(host)
            if numbers is not None:
                yield numbers
            dot = host.find(".")
            if dot < 0:
                return
            host = host[dot + 1 :]

    def applying(self, host: str, path: str) -> list[Correction]:
        """The corrections whose entry covers this request, in file order."""
        numbers = sorted(n for found in self._suffixes(host) for n in found)
        return [self.items[n] for n in numbers if covers(self.items[n].scope, host, path)]

    def apply(self, hits: list[Hit], host: str, path: str) -> list[Hit]:
        """The matching entries of a request once the corrections are applied."""
        return self.explain(hits, host, path)[0]

    def explain(self, hits: list[Hit], host: str, path: str) -> tuple[list[Hit], list[Applied]]:
        """`apply`, and what each correction that applied changed (for `categories lookup`)."""
        done: list[Applied] = []
        for correction in self.applying(host, path):
            kept: list[Hit] = []
            changed: list[Entry] = []
            source = correction.source
            for hit in hits:
                if source in hit.categories and correction.affects(hit.entry):
                    changed.append(hit.entry)
                    rest = tuple(c for c in hit.categories if c != source)
                    if not rest:
                        continue  # an entry left with no category no longer matches
                    hit = Hit(hit.entry, rest)
                kept.append(hit)
            if correction.target is not None:
                kept.append(Hit(correction.scope, (correction.target,)))
            hits = kept
            done.append(Applied(correction, tuple(changed)))
        return hits, done

    # --- carried in the compiled index -----------------------------------------------------------

    def as_records(self, relative: Callable[[str], str]) -> list[list[Any]]:
        """JSON-able records (file names through `relative`), for the compiled index."""
        return [
            [str(c.scope), c.source, c.target, c.subdomains, c.reason, relative(c.file), c.line]
            for c in self.items
        ]

    @classmethod
    def from_records(
        cls, records: Iterable[list[Any]], resolve: Callable[[str], str]
    ) -> Corrections:
        """The inverse of `as_records`; entries were checked when the file was read."""
        return cls.of(
            Correction(parse_entry(scope), source, target, bool(sub), reason, resolve(file), line)
            for scope, source, target, sub, reason, file, line in records
        )


NO_CORRECTIONS = Corrections()


# --- reading the file ----------------------------------------------------------------------------


def read_corrections(root: Any, file: str) -> tuple[Corrections, list[Problem]]:
    """Validate a corrections file's data (from `yamlsource.load_yaml`); every problem located.

    Errors: not a mapping with the one key `corrections`; an item that is not a mapping, has an
    unknown key or misses `entries`, `from` or `reason`; an unknown category; `to` equal to
    `from`; `subdomains` not true or false; an empty reason; an entry that is not a host or
    `host/path`; the same entry corrected twice from the same category.
    """
    reader = FieldReader(file)
    items: list[Correction] = []
    if not isinstance(root, dict) or list(root) != ["corrections"]:
        reader.problem(root, None, "", "expected a mapping with the one key 'corrections'")
        return NO_CORRECTIONS, reader.problems
    listed = root["corrections"]
    if not isinstance(listed, list):
        reader.problem(
            root, "corrections", "corrections", f"expected a list, got {kind_of(listed)}"
        )
        return NO_CORRECTIONS, reader.problems
    seen: dict[tuple[Entry, str], int] = {}
    for i in range(len(listed)):
        items += _read_item(reader, listed, i, seen)
    if reader.problems:
        return NO_CORRECTIONS, reader.problems
    return Corrections.of(items), []


def _read_item(
    reader: FieldReader, listed: list[Any], i: int, seen: dict[tuple[Entry, str], int]
) -> list[Correction]:
    where = f"corrections[{i}]"
    item = reader.mapping(listed, i, where, CORRECTION_KEYS, ("entries", "from", "reason"))
    if item is None:
        return []  # reported by `mapping`
    before = len(reader.problems)
    source = _category(reader, item, "from", where)
    target = _category(reader, item, "to", where) if "to" in item else None
    if source is not None and target == source:
        reader.problem(item, "to", f"{where}.to", f"'{target}' is also 'from': nothing to correct")
    subdomains = item.get("subdomains", False)
    if not isinstance(subdomains, bool):
        reader.problem(
            item,
            "subdomains",
            f"{where}.subdomains",
            f"expected true or false, got {kind_of(subdomains)}",
        )
    reason = item.get("reason")
    if "reason" in item and (not isinstance(reason, str) or not reason.strip()):
        reader.problem(item, "reason", f"{where}.reason", "expected the reason, as text")
    scopes = _entries(reader, item, where)
    if len(reader.problems) > before or source is None or not isinstance(reason, str):
        return []
    line = line_of(listed, i) or 0
    found = []
    for position, scope in scopes:
        if (scope, source) in seen:
            reader.problem(
                item["entries"],
                position,
                f"{where}.entries[{position}]",
                f"'{scope}' is already corrected from {source} at line {seen[scope, source]}",
            )
            continue
        seen[scope, source] = line
        found.append(
            Correction(
                scope, source, target, bool(subdomains), " ".join(reason.split()), reader.file, line
            )
        )
    return found


def _category(reader: FieldReader, item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if not isinstance(value, str):
        if key in item:
            reader.problem(
                item, key, f"{where}.{key}", f"expected a category id, got {kind_of(value)}"
            )
        return None
    if message := category_problem(value, uncategorized=_NOT_A_LIST):
        reader.problem(item, key, f"{where}.{key}", message)
        return None
    return value


def _entries(reader: FieldReader, item: Mapping[str, Any], where: str) -> list[tuple[int, Entry]]:
    raw = item.get("entries")
    if "entries" not in item:
        return []
    if isinstance(raw, str):
        reader.problem(item, "entries", f"{where}.entries", "expected a list: [entry, ...]")
        return []
    if not isinstance(raw, list) or not raw:
        reader.problem(item, "entries", f"{where}.entries", "expected a non-empty list of entries")
        return []
    out = []
    for position, text in enumerate(raw):
        field_name = f"{where}.entries[{position}]"
        if not isinstance(text, str) or not text.strip():
            reader.problem(
                raw, position, field_name, f"expected a domain or host/path, got {kind_of(text)}"
            )
            continue
        try:
            out.append((position, parse_entry(text)))
        except EntryError as e:
            reader.problem(raw, position, field_name, f"cannot use {text!r}: {e}")
    return out


# --- stale corrections ---------------------------------------------------------------------------


class Lists(Protocol):
    """What staleness asks of an index (every `CategoryIndex` answers both)."""

    def list_matches(self, host: str, path: str = "/") -> list[Hit]: ...
    def list_entries_under(self, entry: Entry) -> Iterable[Hit]: ...


def stale_corrections(corrections: Corrections, index: Lists) -> list[Correction]:
    """Corrections that change nothing in the lists: no list entry they would take `from` off.

    A correction is live when an entry matching its own entry's request, and outranked by it,
    carries `from`; with `subdomains`, also when an entry at or below its entry does.
    """
    dead = []
    for c in corrections.items:
        hits = index.list_matches(c.scope.host, c.scope.path or "/")
        live = any(c.source in h.categories and rank(h.entry) <= rank(c.scope) for h in hits)
        if not live and c.subdomains:
            live = any(c.source in h.categories for h in index.list_entries_under(c.scope))
        if not live:
            dead.append(c)
    return dead


class _Corrected(Lists, Protocol):
    @property
    def corrections(self) -> Corrections: ...


def stale_problems(index: _Corrected, severity: Severity = "warning") -> list[Problem]:
    """The stale corrections of an index, as problems naming the file, line and entry: a
    warning when loading (the lists changed; the correction should go), an error for `check`."""
    return [
        Problem(
            c.file,
            c.line,
            f"entries: {c.scope}",
            f"stale correction: no list entry it corrects carries '{c.source}' any more "
            "(remove it)",
            severity,
        )
        for c in stale_corrections(index.corrections, index)
    ]
