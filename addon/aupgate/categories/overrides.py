"""An agency's amendments to the shared category lists, made in its own policy file.

The lists are shared by every agency and copied unchanged from their publishers; an agency that
disagrees with one entry ("zoho.com is webmail, but we use Zoho CRM"; "this local card room is
gambling and no list knows it") must not edit them, or the change would apply to everyone and be
lost at the next list update. Instead its policy says, at the top level:

    categories:
      add:
        gambling: [pokerclub.example, news.example/betting]
      remove: [zoho.com]
      recategorise:
        outlook.office365.com: shopping

The meaning is exactly "as if the agency's copy of the lists had been edited so": `add` puts
entries on a list of that category, `remove` takes an entry off every shared list, `recategorise`
replaces the categories of one entry (adding it if no list has it). Entries are list entries,
matched by the usual rules (subdomains, URL prefixes, most specific wins); only the set of
entries changes, never the matching. So removing `zoho.com` leaves a listed `mail.zoho.com`
alone, and naming a host that no list has in `remove` does nothing (`aupgate check` says so).

Cost: requests whose host is not under any overridden entry take the shared index's answer
directly; the others combine the index's matches with the agency's (one extra pass over a few
hits). The engine remembers the result per host and path anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aupgate.errors import Problem
from aupgate.hostname import is_under
from aupgate.yamlsource import FieldReader

from .entries import Entry, EntryError, parse_entry
from .ids import UNCATEGORIZED, category_problem
from .index import CategoryIndex, Classification, Hit, classification_of

__all__ = ["OVERRIDE_KEYS", "CategoryOverrides", "describe_effect", "read_overrides"]

OVERRIDE_KEYS = ("add", "remove", "recategorise")
_NOT_A_LIST = f"'{UNCATEGORIZED}' is no list's category; use categories.remove"
_ENTRIES = "expected a list of entries"


@dataclass(frozen=True, slots=True)
class CategoryOverrides:
    """One agency's changes to the shared lists: entries added, removed, re-categorised."""

    add: tuple[tuple[Entry, str], ...] = ()
    remove: frozenset[Entry] = frozenset()
    recategorise: tuple[tuple[Entry, tuple[str, ...]], ...] = ()
    _replaced: frozenset[Entry] = field(default=frozenset(), repr=False, compare=False)
    _extra: tuple[Hit, ...] = field(default=(), repr=False, compare=False)
    _hosts: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def of(
        cls,
        add: tuple[tuple[Entry, str], ...] = (),
        remove: frozenset[Entry] = frozenset(),
        recategorise: tuple[tuple[Entry, tuple[str, ...]], ...] = (),
    ) -> CategoryOverrides:
        """Build overrides with the lookup sets the per-request path needs."""
        replaced = remove | {entry for entry, _ in recategorise}
        extra = tuple(Hit(e, (c,)) for e, c in add) + tuple(Hit(e, cs) for e, cs in recategorise)
        hosts = frozenset(e.host for e in replaced) | frozenset(h.entry.host for h in extra)
        return cls(add, remove, recategorise, replaced, extra, hosts)

    def classify(self, index: CategoryIndex, host: str, path: str = "/") -> Classification:
        """The classification of a request under the agency's amended lists."""
        if not self._touches(host):
            return index.classify(host, path)
        return classification_of(self.hits(index, host, path))

    def hits(self, index: CategoryIndex, host: str, path: str = "/") -> list[Hit]:
        """Every matching entry of the amended lists: the index's, less removed and replaced
        entries, plus the agency's own."""
        hits = [hit for hit in index.matches(host, path) if hit.entry not in self._replaced]
        hits += [hit for hit in self._extra if _covers(hit.entry, host, path)]
        return hits

    def _touches(self, host: str) -> bool:
        hosts = self._hosts
        if host in hosts:
            return True
        dot = host.find(".")
        while dot >= 0:
            if host[dot + 1 :] in hosts:
                return True
            dot = host.find(".", dot + 1)
        return False


def _covers(entry: Entry, host: str, path: str) -> bool:
    return is_under(host, entry.host) and (entry.path is None or path.startswith(entry.path))


# --- reading the policy's `categories` key -------------------------------------------------------


def read_overrides(
    top: Mapping[str, Any], file: str
) -> tuple[CategoryOverrides | None, list[Problem]]:
    """Read and validate a policy's top-level `categories` key (absent: None, no problems)."""
    if "categories" not in top:
        return None, []
    reader = _Reader(file)
    raw = top["categories"]
    if not isinstance(raw, dict):
        reader.problem(
            top, "categories", "categories", "expected a mapping with add, remove, recategorise"
        )
        return None, reader.problems
    for key in raw:
        if key not in OVERRIDE_KEYS:
            hint = " (did you mean 'recategorise'?)" if key.startswith("recategori") else ""
            reader.problem(
                raw,
                key,
                f"categories.{key}",
                f"unknown key{hint} (expected one of: add, remove, recategorise)",
            )
    add = reader.additions(raw)
    remove = reader.removals(raw)
    recategorise = reader.recategorisations(raw)
    if not (add or remove or recategorise) and not reader.problems:
        reader.problem(
            top, "categories", "categories", "changes nothing: give add, remove or recategorise"
        )
    if reader.problems:
        return None, reader.problems
    return CategoryOverrides.of(tuple(add), frozenset(remove), tuple(recategorise)), []


class _Reader(FieldReader):
    """The policy reader, plus the override entries: each entry may be named once in all."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.seen: dict[Entry, str] = {}

    def entry(self, container: object, key: str | int, where: str, text: object) -> Entry | None:
        if not isinstance(text, str) or not text.strip():
            self.problem(container, key, where, "expected a domain or host/path entry")
            return None
        try:
            entry = parse_entry(text)
        except EntryError as e:
            self.problem(container, key, where, f"cannot use {text!r}: {e}")
            return None
        if entry in self.seen:
            self.problem(container, key, where, f"'{entry}' is already named at {self.seen[entry]}")
            return None
        self.seen[entry] = where
        return entry

    def category(self, container: object, key: str | int, where: str, name: object) -> str | None:
        text = str(name)
        message = category_problem(text, uncategorized=_NOT_A_LIST)
        if not message:
            return text
        self.problem(container, key, where, message)
        return None

    def additions(self, raw: Mapping[str, Any]) -> list[tuple[Entry, str]]:
        if "add" not in raw:
            return []
        add = raw["add"]
        if not isinstance(add, dict) or not add:
            self.problem(raw, "add", "categories.add", "expected a mapping of category: [entries]")
            return []
        out = []
        for name in add:
            where = f"categories.add.{name}"
            category = self.category(add, name, where, name)
            for i, text in enumerate(self.items(add, name, where, _ENTRIES)):
                entry = self.entry(add[name], i, f"{where}[{i}]", text)
                if entry is not None and category is not None:
                    out.append((entry, category))
        return out

    def removals(self, raw: Mapping[str, Any]) -> list[Entry]:
        out = []
        for i, text in enumerate(self.items(raw, "remove", "categories.remove", _ENTRIES)):
            entry = self.entry(raw["remove"], i, f"categories.remove[{i}]", text)
            if entry is not None:
                out.append(entry)
        return out

    def recategorisations(self, raw: Mapping[str, Any]) -> list[tuple[Entry, tuple[str, ...]]]:
        if "recategorise" not in raw:
            return []
        table = raw["recategorise"]
        if not isinstance(table, dict) or not table:
            message = "expected a mapping of entry: category (or [categories])"
            self.problem(raw, "recategorise", "categories.recategorise", message)
            return []
        out = []
        for text, names in table.items():
            where = f"categories.recategorise.{text}"
            entry = self.entry(table, text, where, text)
            listed = names if isinstance(names, list) else [names]
            categories = [self.category(table, text, where, n) for n in listed]
            if not listed:
                self.problem(table, text, where, "names no category (to drop it, use remove)")
            elif entry is not None and None not in categories:
                out.append((entry, tuple(sorted({c for c in categories if c is not None}))))
        return out


# --- the effect, for `aupgate check` -------------------------------------------------------------


def describe_effect(overrides: CategoryOverrides, index: CategoryIndex) -> list[str]:
    """What the overrides change against the shared lists in force, in a few lines."""
    lines: list[str] = []
    added: dict[str, list[int]] = {}
    for entry, category in overrides.add:
        counts = added.setdefault(category, [0, 0])
        counts[0] += 1
        counts[1] += category in index.categories_of(entry)
    if added:
        parts = [
            f"{category} +{n}" + (f" ({same} already listed so)" if same else "")
            for category, (n, same) in sorted(added.items())
        ]
        lines.append("adds " + ", ".join(parts))
    if overrides.remove:
        gone = [(e, index.categories_of(e)) for e in sorted(overrides.remove, key=str)]
        effective = [f"{e} ({', '.join(c)})" for e, c in gone if c]
        idle = [str(e) for e, c in gone if not c]
        text = f"removes {len(effective)} shared entries"
        if effective:
            text += ": " + "; ".join(effective)
        if idle:
            text += f"; on no shared list, so nothing to remove: {', '.join(idle)}"
        lines.append(text)
    if overrides.recategorise:
        moves = []
        for entry, categories in overrides.recategorise:
            before = ", ".join(index.categories_of(entry)) or "on no list"
            moves.append(f"{entry} ({before} -> {', '.join(categories)})")
        lines.append(f"re-categorises {len(moves)}: " + "; ".join(moves))
    return lines
