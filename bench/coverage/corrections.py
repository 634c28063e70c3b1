"""A second, independent reading of `categories/aupgate/corrections.yaml`, from the data half.

The proxy applies corrections in `aupgate.categories.corrections`; this module was written first,
from the documented meaning alone, and tests/test_corrections_data.py holds the shipped index to
it on every corrected entry, so a misreading in either shows up as a disagreement.

The rules (docs/categories.md, "Corrections"):

- A correction names entries (plain-list syntax), a category `from`, optionally a category `to`
  and `subdomains`, and a reason.
- A correction acts like an entry of its own. For a request at or under one of its entries,
  `from` is taken away from every matching list entry that the correction's entry outranks or
  equals, by the ranking that picks the winner (any URL entry beats any domain entry, then more
  labels, then a longer path); with `subdomains`, from the matching entries below it too. An
  entry left with no category no longer matches. `to`, when given, is added as an entry at the
  correction's entry.
- Then the usual rules pick the winner among what is left.

It uses only the index's `matches` (every entry that matches a request) and `parse_url`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from aupgate.normalise import parse_url

KEYS = frozenset({"entries", "from", "to", "subdomains", "reason"})


class Scope(NamedTuple):
    """A correction's entry: a host (and its subdomains), optionally narrowed to a path prefix."""

    host: str
    path: str | None

    def __str__(self) -> str:
        return self.host if self.path is None else self.host + self.path


@dataclass(frozen=True, slots=True)
class Correction:
    """One entry of one correction item, with where it was written."""

    scope: Scope
    source: str  # the category taken away
    target: str | None  # the category added, if any
    subdomains: bool
    reason: str
    line: int


class Result(NamedTuple):
    """What `CategoryIndex.classify` returns, for the engine (it reads these three fields)."""

    categories: tuple[str, ...]
    all_categories: tuple[str, ...]
    matched: str | None


def parse_scope(text: str) -> Scope:
    """An entry in plain-list syntax, normalised as a request would be."""
    url = parse_url(text if "://" in text else f"http://{text}")
    slash = text.split("://", 1)[-1].find("/")
    return Scope(url.host, None if slash < 0 else url.target)


def read_corrections(path: Path, category_ids: Iterable[str]) -> list[Correction]:
    """Read and check the file: keys, category ids, reasons, entries. Raises ValueError."""
    ids = set(category_ids)
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    keys = [k.value for k, _ in root.value] if isinstance(root, yaml.MappingNode) else None
    if keys != ["corrections"]:
        raise ValueError(f"{path}: expected a mapping with the one key 'corrections'")
    items = root.value[0][1]
    if not isinstance(items, yaml.SequenceNode):
        raise ValueError(f"{path}: corrections: expected a list")
    found: list[Correction] = []
    seen: dict[tuple[Scope, str], int] = {}
    for i, node in enumerate(items.value):
        line = node.start_mark.line + 1
        where = f"{path}:{line}: corrections[{i}]"
        item: dict[str, Any] = yaml.safe_load(yaml.serialize(node))
        if not isinstance(item, dict) or set(item) - KEYS:
            raise ValueError(f"{where}: expected a mapping with keys {sorted(KEYS)}")
        for key in ("entries", "from", "reason"):
            if not item.get(key):
                raise ValueError(f"{where}: missing '{key}'")
        source, target = item["from"], item.get("to")
        if source not in ids:
            raise ValueError(f"{where}.from: unknown category {source!r}")
        if target is not None and (target not in ids or target == source):
            raise ValueError(f"{where}.to: expected a category id other than 'from'")
        if not isinstance(item["reason"], str) or not item["reason"].strip():
            raise ValueError(f"{where}.reason: expected text")
        subdomains = item.get("subdomains", False)
        if not isinstance(subdomains, bool):
            raise ValueError(f"{where}.subdomains: expected true or false")
        if not isinstance(item["entries"], list):
            raise ValueError(f"{where}.entries: expected a list")
        for text in item["entries"]:
            scope = parse_scope(str(text))
            if (scope, source) in seen:
                raise ValueError(f"{where}: {scope} from {source} already corrected at line "
                                 f"{seen[scope, source]}")
            seen[scope, source] = line
            found.append(Correction(scope, source, target, subdomains, item["reason"].strip(),
                                    line))
    return found


def _covers(outer: Scope, inner: Scope) -> bool:
    """Whether entry `outer` matches everything entry `inner` matches (outer is it or broader)."""
    if outer.host != inner.host and not inner.host.endswith("." + outer.host):
        return False
    if outer.path is None:
        return True
    return inner.path is not None and inner.path.startswith(outer.path)


def _rank(scope: Scope) -> tuple[bool, int, int]:
    return (scope.path is not None, scope.host.count("."), len(scope.path or ""))


class CorrectedIndex:
    """An index with the corrections applied; answers `classify` and `matches` like one."""

    def __init__(self, index: Any, corrections: list[Correction]) -> None:
        self.index = index
        self.corrections = corrections
        self._hosts = frozenset(c.scope.host for c in corrections)

    def _touches(self, host: str) -> bool:
        while True:
            if host in self._hosts:
                return True
            dot = host.find(".")
            if dot < 0:
                return False
            host = host[dot + 1 :]

    def applying(self, host: str, path: str) -> list[Correction]:
        """The corrections whose entry covers this request."""
        request = Scope(host, path)
        return [c for c in self.corrections if _covers(c.scope, request)]

    def matches(self, host: str, path: str = "/") -> list[tuple[Scope, tuple[str, ...]]]:
        """(entry, categories) of every matching entry once the corrections are applied."""
        hits = [(Scope(h.entry.host, h.entry.path), tuple(h.categories))
                for h in self.index.matches(host, path)]
        if not self._touches(host):
            return hits
        for c in self.applying(host, path):
            corrected = []
            for entry, categories in hits:
                outranked = _rank(entry) <= _rank(c.scope)
                affected = outranked or (c.subdomains and _covers(c.scope, entry))
                if affected and c.source in categories:
                    categories = tuple(x for x in categories if x != c.source)
                if categories:
                    corrected.append((entry, categories))
            if c.target is not None:
                corrected.append((c.scope, (c.target,)))
            hits = corrected
        return hits

    def classify(self, host: str, path: str = "/") -> Result:
        if not self._touches(host):
            return self.index.classify(host, path)  # type: ignore[no-any-return]
        by_entry: dict[Scope, set[str]] = {}
        for entry, categories in self.matches(host, path):
            by_entry.setdefault(entry, set()).update(categories)
        if not by_entry:
            return Result((), (), None)
        best = max(by_entry, key=_rank)
        union = tuple(sorted({c for cs in by_entry.values() for c in cs}))
        return Result(tuple(sorted(by_entry[best])), union, str(best))


def stale(index: Any, corrections: list[Correction]) -> list[Correction]:
    """Corrections that change nothing: no entry they outrank on their own entry's request
    carries `from`."""
    dead = []
    for c in corrections:
        hits = index.matches(c.scope.host, c.scope.path or "/")
        if not any(c.source in h.categories and _rank(Scope(*h.entry)) <= _rank(c.scope)
                   for h in hits):
            dead.append(c)
    return dead
