"""The compiled category index: every list in one file that a process reads instead of the lists.

Reading the lists takes seconds and about 100 MiB per process (every entry a Python string in a
dict), and the proxy runs several worker processes that would each pay it at start and on every
reload. Compiled, the same entries are one file: opening it is one read and a checksum of its
bytes (`indexfile`), the part requests need is a few MiB of the process's own memory, and nothing
is unpickled. The process never maps the file, so nothing done to the file later (truncating it,
copying another index over it) can reach the index in force; `gateway` notices and reloads.

The keys live in a MARISA trie (`marisa-trie`), chosen by measurement over a hash table and sorted
arrays (docs/benchmarks.md, "Category index"): five times smaller than the hash table, as fast,
and answers "which keys are prefixes of this string" in one C++ call, which is exactly the
question a request asks. Hosts are stored reversed with a trailing dot (`bet365.com` ->
`moc.563teb.`), so the keys that are prefixes of a reversed host are precisely its domain entries
on label boundaries, most specific last; a URL entry `host/path` is the host's key followed by the
path, found by the same call on `reversed host + "." + path`.

Each key has a class: the categories of the entry (a bit mask over CATEGORY_IDS) and flags: URL
entries hang under this host key; a correction's entry is this host (a request then takes the
corrected path). A key that is no entry (mask 0) may exist for its flags alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

import marisa_trie  # type: ignore[import-not-found, import-untyped, unused-ignore]

from aupgate.errors import Problem
from aupgate.memo import remember

from .corrections import Corrections
from .entries import Entry, Hit
from .ids import CATEGORY_IDS
from .index import NO_MATCH, CategoryIndex, Classification, classification_of
from .indexfile import IndexFileError, Verified, read_verified, section
from .loadreport import LoadReport, SourceReport
from .sources import SourceSpec

__all__ = [
    "CORRECTED",
    "HAS_URLS",
    "CompiledIndex",
    "IndexFileError",
    "Origin",
    "host_key",
]

HAS_URLS = 1  # class flag: URL-prefix entries hang under this host key
CORRECTED = 2  # class flag: a correction's entry is on this host
_MEMO_LIMIT = 65_536


class _Trie(Protocol):
    """The part of `marisa_trie.Trie` used here (the package ships no type information)."""

    def iter_prefixes_with_ids(self, prefix: str) -> Iterator[tuple[str, int]]: ...
    def iteritems(self, prefix: str = ...) -> Iterator[tuple[str, int]]: ...
    def get(self, key: str, default: int = ...) -> int: ...
    def map(self, buffer: memoryview) -> None: ...
    def tobytes(self) -> bytes: ...
    def __len__(self) -> int: ...


def host_key(host: str) -> str:
    """The trie key of a host: reversed, then a dot, so prefixes fall on label boundaries."""
    return host[::-1] + "."


def _host_of(key: str) -> str:
    return key[-2::-1]


class Origin(NamedTuple):
    """One list line that gave an entry: which file, which line, from which source."""

    file: str
    line: int
    source: SourceSpec


@dataclass(frozen=True, slots=True)
class _Chain:
    """What every request whose most specific matching key is the same key has in common."""

    result: Classification  # the answer when no URL entry matches the path
    masks: int  # union of the domain entries' category masks
    url_hosts: tuple[str, ...]  # host keys on the chain with URL entries, most specific first


class _Corrected:
    """Memo value: a correction's entry is on the chain, so the request takes the slow path."""


_CORRECTED = _Corrected()


class CompiledIndex(CategoryIndex):
    """A compiled index file, read and verified; answers exactly as `ListIndex` over the same lists.

    Open it with `CompiledIndex.open` (checks integrity) or, normally, through
    `cache.load_index`, which also checks that it is current and rebuilds it if not.
    """

    __slots__ = (
        "_classes",
        "_corrections",
        "_data",
        "_files",
        "_memo",
        "_meta",
        "_prefix_ids",
        "_provenance",
        "_sources",
        "_trie",
        "_tuples",
        "_values",
        "checksum",
        "identity",
        "path",
        "report",
    )

    def __init__(self, path: Path, verified: Verified, base: Path) -> None:
        self.path = path
        self.identity = verified.identity  # which file this was, for noticing it is replaced
        self.checksum = verified.checksum.hex()
        meta = verified.meta
        self._meta = meta
        self._data = verified.data  # marisa maps the buffer without keeping a reference: this does
        trie = cast(_Trie, marisa_trie.Trie())
        try:
            trie.map(section(verified, "trie"))
        except IndexFileError:
            raise
        except Exception as e:  # marisa raises plain exceptions on a bad trie image
            raise IndexFileError(f"the trie does not load: {e}") from e
        self._trie = trie
        values = section(verified, "values")
        self._values = values.cast("H") if meta["value_code"] == "H" else values.cast("I")
        self._classes: list[tuple[int, int]] = [(m, f) for m, f in meta["classes"]]
        if len(trie) != meta["keys"] or len(self._values) != meta["keys"]:
            raise IndexFileError("key counts disagree between sections")
        self._tuples: dict[int, tuple[str, ...]] = {}
        self._memo: dict[str, Classification | _Chain | _Corrected] = {}
        self._prefix_ids = trie.iter_prefixes_with_ids
        self._sources = [_spec(s, base) for s in meta["sources"]]
        self._files: list[tuple[str, int]] = [
            (str(base / name), source) for name, source in meta["files"]
        ]
        self._corrections = Corrections.from_records(
            meta["corrections"], lambda name: str(base / name)
        )
        self._provenance: tuple[memoryview, memoryview, memoryview] | None = None
        self.report = _report(meta["report"], base, meta["category_counts"])

    @classmethod
    def open(cls, path: Path, base: Path | None = None) -> CompiledIndex:
        """Read a compiled index after checking magic, version, size and checksum.

        Args:
            path: the index file.
            base: the folder sources.yaml is in; file names in the report are relative to it
                (default: the index file's folder).

        Raises:
            FileNotFoundError: there is no such file.
            IndexFileError: the file is not a usable index of this version.
            OSError: it cannot be read.
        """
        verified = read_verified(path)
        try:
            return cls(path, verified, base if base is not None else path.parent)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise IndexFileError(f"unreadable metadata: {e}") from e

    @property
    def digest(self) -> str:
        """The content digest of the sources this index was compiled from."""
        return str(self._meta["digest"])

    @property
    def sources(self) -> list[SourceSpec]:
        """The lists this index was compiled from, with their provenance."""
        return list(self._sources)

    @property
    def size(self) -> int:
        """Size of the index file in bytes."""
        return int(self.identity.size)

    @property
    def resident(self) -> int:
        """Bytes of the file this process keeps in memory (the trie and the key classes)."""
        return len(self._data)

    @property
    def corrections(self) -> Corrections:
        return self._corrections

    def __len__(self) -> int:
        return int(self._meta["entries"])

    def category_counts(self) -> dict[str, int]:
        return dict(self._meta["category_counts"])

    # --- per request ---

    def classify(self, host: str, path: str = "/") -> Classification:
        """Classify a request; see `CategoryIndex.classify` and docs/categories.md.

        One trie call lists every key on the host's label boundaries with its id. The common
        hit, one domain entry with nothing under it, is answered on the spot (cheaper than
        remembering it); what follows from a longer chain of keys is remembered (bounded): the
        answer itself when no URL entries lie on the way, else a `_Chain`, and only then is the
        path looked at. A chain with a correction's entry on it is answered from the corrected
        matches (`classification_of`), a few hundred hosts in all.
        """
        found = [*self._prefix_ids(host[::-1] + ".")]
        if not found:
            return NO_MATCH
        if len(found) == 1:
            key, kid = found[0]
            mask, flags = self._classes[self._values[kid]]
            if mask and not flags:
                names = self._tuples.get(mask) or self._names(mask)
                return Classification(names, names, key[-2::-1])
        known = self._memo.get(found[-1][0])
        if known is None:
            known = self._remember(found)
        if type(known) is Classification:
            return known
        if known is _CORRECTED:
            return classification_of(self.matches(host, path))
        assert isinstance(known, _Chain)
        if path[:1] != "/":
            return known.result
        return self._with_urls(known, path)

    def _remember(self, found: list[tuple[str, int]]) -> Classification | _Chain | _Corrected:
        """Work out what the matching host keys (shortest first) mean, and remember it."""
        values, classes = self._values, self._classes
        winner = ""
        shown = masks = 0
        url_hosts: list[str] = []
        known: Classification | _Chain | _Corrected
        for key, kid in found:
            mask, flags = classes[values[kid]]
            if mask:
                winner = key
                masks |= mask
                shown = mask
            if flags & HAS_URLS:
                url_hosts.append(key)
            if flags & CORRECTED:
                return remember(self._memo, found[-1][0], _CORRECTED, _MEMO_LIMIT)
        result = (
            Classification(self._names(shown), self._names(masks), _host_of(winner))
            if winner
            else NO_MATCH
        )
        known = _Chain(result, masks, tuple(reversed(url_hosts))) if url_hosts else result
        return remember(self._memo, found[-1][0], known, _MEMO_LIMIT)

    def _with_urls(self, chain: _Chain, path: str) -> Classification:
        """Any URL match beats every domain match; the most specific host, then longest path."""
        values, classes = self._values, self._classes
        winner: tuple[str, str, int] | None = None  # host key, URL key, mask
        masks = chain.masks
        for hk in chain.url_hosts:
            length = len(hk)
            longest: tuple[str, int] | None = None
            for key, kid in self._trie.iter_prefixes_with_ids(hk + path):
                if len(key) > length:  # a URL key of this host (host keys are shorter)
                    mask = classes[values[kid]][0]
                    masks |= mask
                    longest = (key, mask)  # prefixes come shortest first
            if longest is not None and winner is None:
                winner = (hk, *longest)
        if winner is None:
            return chain.result
        hk, key, mask = winner
        return Classification(self._names(mask), self._names(masks), _host_of(hk) + key[len(hk) :])

    def _names(self, mask: int) -> tuple[str, ...]:
        names = self._tuples.get(mask)
        if names is None:
            names = tuple(sorted(c for i, c in enumerate(CATEGORY_IDS) if mask >> i & 1))
            self._tuples[mask] = names
        return names

    def _hits(self, entry: Entry, kid: int) -> Iterator[Hit]:
        """The hit of one key, if it is an entry (a key may exist for its flags alone)."""
        mask = self._classes[self._values[kid]][0]
        if mask:
            yield Hit(entry, self._names(mask))

    def list_matches(self, host: str, path: str = "/") -> list[Hit]:
        hits: list[Hit] = []
        values, classes = self._values, self._classes
        for key, kid in self._trie.iter_prefixes_with_ids(host[::-1] + "."):
            hostname = _host_of(key)
            hits.extend(self._hits(Entry(hostname), kid))
            if classes[values[kid]][1] & HAS_URLS and path[:1] == "/":
                for url_key, url_id in self._trie.iter_prefixes_with_ids(key + path):
                    if len(url_key) > len(key):
                        hits.extend(self._hits(Entry(hostname, url_key[len(key) :]), url_id))
        return hits

    def list_entries_under(self, entry: Entry) -> Iterator[Hit]:
        for key, kid in self._trie.iteritems(host_key(entry.host)):
            slash = key.find("/")
            hostname = _host_of(key) if slash < 0 else _host_of(key[:slash])
            found = Entry(hostname) if slash < 0 else Entry(hostname, key[slash:])
            if entry.path is None or (found.path or "").startswith(entry.path):
                yield from self._hits(found, kid)

    # --- explaining ---

    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        """The categories the lists give exactly this entry; () when it is on no list."""
        kid = self._key_id(entry)
        return () if kid < 0 else self._names(self._classes[self._values[kid]][0])

    def origins(self, entry: Entry) -> list[Origin]:
        """Every list line that gave this exact entry, in the order the lists were read.

        The first call reads the file again, whole, and it must hash to the checksum of the
        index in force (a proxy never calls this; `aupgate categories lookup` does).

        Raises:
            IndexFileError: the file changed since this index was read.
        """
        kid = self._key_id(entry)
        if kid < 0:
            return []
        offsets, files, lines = self._prov()
        found = []
        for at in range(offsets[kid], offsets[kid + 1]):
            file, source = self._files[files[at]]
            found.append(Origin(file, lines[at], self._sources[source]))
        return found

    def _key_id(self, entry: Entry) -> int:
        key = host_key(entry.host) + (entry.path or "")
        return self._trie.get(key, -1)

    def _prov(self) -> tuple[memoryview, memoryview, memoryview]:
        if self._provenance is None:
            whole = read_verified(self.path, whole=True)
            if whole.checksum.hex() != self.checksum:
                raise IndexFileError(f"{self.path} changed since this index was read")
            self._provenance = (
                section(whole, "prov_offsets").cast("I"),
                section(whole, "prov_files").cast("H"),
                section(whole, "prov_lines").cast("I"),
            )
        return self._provenance


def _spec(raw: dict[str, Any], base: Path) -> SourceSpec:
    return SourceSpec(
        path=base / raw["path"],
        format=raw["format"],
        category=raw["category"],
        source=raw["source"],
        licence=raw["licence"],
        snapshot=raw["snapshot"],
        line=raw["line"],
    )


def _report(raw: dict[str, Any], base: Path, counts: dict[str, int]) -> LoadReport:
    """The load report as it was when compiling, with file names as a fresh load gives them."""
    sources = tuple(
        SourceReport(str(base / path), category, entries, rejected, duplicates, skipped)
        for path, category, entries, rejected, duplicates, skipped in raw["sources"]
    )
    problems = tuple(
        Problem(str(base / file), line, "", message, severity="warning")
        for file, line, message in raw["problems"]
    )
    return LoadReport(sources, problems, dict(counts))
