"""The compiled category index: every list in one file that a process maps instead of loading.

Reading the lists takes seconds and about 100 MiB per process (every entry a Python string in a
dict), and the proxy runs several worker processes that would each pay it at start and on every
reload. Compiled, the same entries are one read-only file: opening it is an `mmap` and a checksum,
the pages are shared by every process through the page cache, and nothing is unpickled.

The keys live in a MARISA trie (`marisa-trie`), chosen by measurement over a hash table and sorted
arrays in the same kind of file (docs/benchmarks.md, "Category index"): five times smaller than the
hash table, as fast, and answers "which keys are prefixes of this string" in one C++ call, which is
exactly the question a request asks. Hosts are stored reversed with a trailing dot
(`bet365.com` -> `moc.563teb.`), so the keys that are prefixes of a reversed host are precisely its
domain entries on label boundaries, most specific last; a URL entry `host/path` is the host's key
followed by the path, found by the same call on `reversed host + "." + path`.

File layout (little-endian; sections 8-byte aligned):

    preamble   magic, format version, total size, meta offset and length, sha256 of the rest
    trie       marisa-trie bytes, mapped in place
    values     one class number per key id (uint16, or uint32 if ever needed)
    prov_*     per key id, the (file, line) of every list line that gave the entry
    meta       JSON: sources and their provenance, the load report, classes, section offsets

A file whose magic, version, size or checksum is wrong is refused with `IndexFileError`; whether
it is *current* (its sources unchanged) is decided by `cache`, which rebuilds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import struct
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol, cast

import marisa_trie  # type: ignore[import-not-found, import-untyped, unused-ignore]

from aupgate.errors import Problem
from aupgate.memo import remember

from .entries import Entry
from .ids import CATEGORY_IDS
from .index import NO_MATCH, CategoryIndex, Classification, Hit
from .loadreport import LoadReport, SourceReport
from .sources import SourceSpec

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "CompiledIndex",
    "IndexFileError",
    "Origin",
    "host_key",
    "write_index",
]

MAGIC = b"AUPIDX\x00\n"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct("<8sIIQQQ32s")  # magic, version, flags, size, meta off, meta len, sha256
_BODY_START = 80  # the preamble, padded
HAS_URLS = 1  # class flag: URL-prefix entries hang under this host key
_CHUNK = 1 << 20
_MEMO_LIMIT = 65_536


class IndexFileError(Exception):
    """A compiled index that must not be used: not ours, another version, truncated, corrupt."""


class _Trie(Protocol):
    """The part of `marisa_trie.Trie` used here (the package ships no type information)."""

    def iter_prefixes_with_ids(self, prefix: str) -> Iterator[tuple[str, int]]: ...
    def get(self, key: str, default: int = ...) -> int: ...
    def map(self, buffer: memoryview) -> None: ...
    def tobytes(self) -> bytes: ...
    def __len__(self) -> int: ...


def host_key(host: str) -> str:
    """The trie key of a host: reversed, then a dot, so prefixes fall on label boundaries."""
    return host[::-1] + "."


def _host_of(key: str) -> str:
    return key[-2::-1]


# --- writing -------------------------------------------------------------------------------------


class Origin(NamedTuple):
    """One list line that gave an entry: which file, which line, from which source."""

    file: str
    line: int
    source: SourceSpec


def write_index(
    out: BinaryIO,
    *,
    keys: Sequence[str],
    classes_of_keys: Sequence[int],
    classes: Sequence[tuple[int, int]],
    records: tuple[Sequence[int], Sequence[int], Sequence[int]],
    meta: dict[str, Any],
) -> None:
    """Write a compiled index to a seekable binary file.

    Args:
        keys: trie keys (see `host_key`); position in this list is the key's local number.
        classes_of_keys: the class number of each key, by local number.
        classes: (category mask, flags) of each class; bit i of a mask is CATEGORY_IDS[i].
        records: provenance as three parallel arrays: local key number, file number, line.
        meta: JSON-able facts about the sources; sections and counts are added here.
    """
    trie = cast(_Trie, marisa_trie.Trie(keys))
    local_to_id = array("I", bytes(4 * len(keys)))
    for local, key in enumerate(keys):
        local_to_id[local] = trie.get(key)
    code = "H" if len(classes) <= 0xFFFF else "I"
    values = array(code, bytes(array(code).itemsize * len(keys)))
    for local, klass in enumerate(classes_of_keys):
        values[local_to_id[local]] = klass
    offsets, files, lines = _provenance(records, local_to_id, len(keys))
    body = hashlib.sha256()
    out.seek(_BODY_START)
    position = _BODY_START
    sections: dict[str, list[int]] = {}

    def put(name: str, data: bytes | array[int]) -> None:
        nonlocal position
        raw = data if isinstance(data, bytes) else data.tobytes()
        pad = (-position) % 8
        blob = b"\0" * pad + raw
        out.write(blob)
        body.update(blob)
        sections[name] = [position + pad, len(raw)]
        position += len(blob)

    put("trie", trie.tobytes())
    put("values", values)
    put("prov_offsets", offsets)
    put("prov_files", files)
    put("prov_lines", lines)
    meta = {**meta, "sections": sections, "keys": len(keys), "value_code": code}
    meta["classes"] = [list(c) for c in classes]
    raw_meta = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    meta_offset = position
    out.write(raw_meta)
    body.update(raw_meta)
    size = meta_offset + len(raw_meta)
    out.seek(0)
    preamble = _PREAMBLE.pack(
        MAGIC, FORMAT_VERSION, 0, size, meta_offset, len(raw_meta), body.digest()
    )
    out.write(preamble.ljust(_BODY_START, b"\0"))


def _provenance(
    records: tuple[Sequence[int], Sequence[int], Sequence[int]],
    local_to_id: array[int],
    nkeys: int,
) -> tuple[array[int], array[int], array[int]]:
    """Group provenance records by trie key id (a counting sort): offsets, files, lines."""
    rec_keys, rec_files, rec_lines = records
    counts = array("I", bytes(4 * (nkeys + 1)))
    for local in rec_keys:
        counts[local_to_id[local] + 1] += 1
    for i in range(1, nkeys + 1):
        counts[i] += counts[i - 1]
    offsets = array("I", counts)
    fill = array("I", counts)
    files = array("H", bytes(2 * len(rec_keys)))
    lines = array("I", bytes(4 * len(rec_keys)))
    for local, file, line in zip(rec_keys, rec_files, rec_lines, strict=True):
        at = fill[local_to_id[local]]
        fill[local_to_id[local]] = at + 1
        files[at] = file
        lines[at] = line
    return offsets, files, lines


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chain:
    """What every request whose most specific matching key is the same key has in common."""

    result: Classification  # the answer when no URL entry matches the path
    masks: int  # union of the domain entries' category masks
    url_hosts: tuple[str, ...]  # host keys on the chain with URL entries, most specific first


class CompiledIndex(CategoryIndex):
    """A compiled index file, memory-mapped; answers exactly as `ListIndex` over the same lists.

    Open it with `CompiledIndex.open` (checks integrity) or, normally, through
    `cache.load_index`, which also checks that it is current and rebuilds it if not.
    """

    __slots__ = (
        "_classes",
        "_files",
        "_map",
        "_memo",
        "_meta",
        "_prefix_ids",
        "_sources",
        "_trie",
        "_tuples",
        "_values",
        "path",
        "report",
    )

    def __init__(self, path: Path, mapped: mmap.mmap, meta: dict[str, Any], base: Path) -> None:
        self.path = path
        self._map = mapped  # marisa maps the buffer without keeping a reference: this does
        self._meta = meta
        view = memoryview(mapped)
        sections: dict[str, list[int]] = meta["sections"]

        def section(name: str) -> memoryview:
            offset, length = sections[name]
            if offset < _BODY_START or offset + length > len(mapped):
                raise IndexFileError(f"section {name} lies outside the file")
            return view[offset : offset + length]

        trie = cast(_Trie, marisa_trie.Trie())
        try:
            trie.map(section("trie"))
        except Exception as e:  # marisa raises plain exceptions on a bad trie image
            raise IndexFileError(f"the trie does not load: {e}") from e
        self._trie = trie
        values = section("values")
        self._values = values.cast("H") if meta["value_code"] == "H" else values.cast("I")
        self._classes: list[tuple[int, int]] = [(m, f) for m, f in meta["classes"]]
        if len(trie) != meta["keys"] or len(self._values) != meta["keys"]:
            raise IndexFileError("key counts disagree between sections")
        self._tuples: dict[int, tuple[str, ...]] = {}
        self._memo: dict[str, Classification | _Chain] = {}
        self._prefix_ids = trie.iter_prefixes_with_ids
        self._sources = [_spec(s, base) for s in meta["sources"]]
        self._files: list[tuple[str, int]] = [
            (str(base / name), source) for name, source in meta["files"]
        ]
        self.report = _report(meta["report"], base, meta["category_counts"])

    @classmethod
    def open(cls, path: Path, base: Path | None = None) -> CompiledIndex:
        """Map a compiled index after checking magic, version, size and checksum.

        Args:
            path: the index file.
            base: the folder sources.yaml is in; file names in the report are relative to it
                (default: the index file's folder).

        Raises:
            FileNotFoundError: there is no such file.
            IndexFileError: the file is not a usable index of this version.
        """
        with path.open("rb") as f:
            size, meta_offset, meta_length = _check_preamble(f, path)
            meta_raw = _checked_body(f, size, meta_offset, meta_length)
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            meta = json.loads(meta_raw)
            return cls(path, mapped, meta, base if base is not None else path.parent)
        except (ValueError, KeyError, TypeError) as e:
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
        return len(self._map)

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
        path looked at.
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
        assert isinstance(known, _Chain)
        if path[:1] != "/":
            return known.result
        return self._with_urls(known, path)

    def _remember(self, found: list[tuple[str, int]]) -> Classification | _Chain:
        """Work out what the matching host keys (shortest first) mean, and remember it."""
        values, classes = self._values, self._classes
        winner = ""
        win_mask = masks = 0
        url_hosts: list[str] = []
        for key, kid in found:
            mask, flags = classes[values[kid]]
            if mask:
                winner, win_mask = key, mask
                masks |= mask
            if flags & HAS_URLS:
                url_hosts.append(key)
        result = (
            Classification(self._names(win_mask), self._names(masks), _host_of(winner))
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

    def matches(self, host: str, path: str = "/") -> list[Hit]:
        hits: list[Hit] = []
        values, classes = self._values, self._classes
        for key, kid in self._trie.iter_prefixes_with_ids(host[::-1] + "."):
            mask, flags = classes[values[kid]]
            hostname = _host_of(key)
            if mask:
                hits.append(Hit(Entry(hostname), self._names(mask)))
            if flags & HAS_URLS and path[:1] == "/":
                for url_key, url_id in self._trie.iter_prefixes_with_ids(key + path):
                    if len(url_key) > len(key):
                        names = self._names(classes[values[url_id]][0])
                        hits.append(Hit(Entry(hostname, url_key[len(key) :]), names))
        return hits

    # --- explaining ---

    def categories_of(self, entry: Entry) -> tuple[str, ...]:
        """The categories the lists give exactly this entry; () when it is on no list."""
        kid = self._key_id(entry)
        return () if kid < 0 else self._names(self._classes[self._values[kid]][0])

    def origins(self, entry: Entry) -> list[Origin]:
        """Every list line that gave this exact entry, in the order the lists were read."""
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

    def _prov(self) -> tuple[memoryview[int], memoryview[int], memoryview[int]]:
        """The provenance arrays; only explaining touches these pages, never a request."""
        view = memoryview(self._map)
        sections = self._meta["sections"]

        def raw(name: str) -> memoryview:
            offset, length = sections[name]
            return view[offset : offset + length]

        return (
            raw("prov_offsets").cast("I"),
            raw("prov_files").cast("H"),
            raw("prov_lines").cast("I"),
        )


def _check_preamble(f: io.BufferedReader, path: Path) -> tuple[int, int, int]:
    raw = f.read(_BODY_START)
    if len(raw) < _BODY_START:
        raise IndexFileError("truncated: shorter than the preamble")
    magic, version, _flags, size, meta_offset, meta_length, _digest = _PREAMBLE.unpack_from(raw)
    if magic != MAGIC:
        raise IndexFileError("bad magic: not an aupgate category index")
    if version != FORMAT_VERSION:
        raise IndexFileError(f"format version {version}, this aupgate reads {FORMAT_VERSION}")
    actual = path.stat().st_size
    if actual != size:
        raise IndexFileError(f"truncated or extended: {actual} bytes, the preamble says {size}")
    if meta_offset + meta_length != size or meta_offset < _BODY_START:
        raise IndexFileError("metadata lies outside the file")
    return size, meta_offset, meta_length


def _checked_body(f: io.BufferedReader, size: int, meta_offset: int, meta_length: int) -> bytes:
    """Hash everything after the preamble against the stored sha256; return the metadata.

    Read with `readinto`, not through the map, so checking does not make the pages resident in
    this process (they stay in the page cache for whoever maps them next).
    """
    f.seek(0)
    expected = _PREAMBLE.unpack_from(f.read(_BODY_START))[6]
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    position = _BODY_START
    meta = bytearray()
    while position < size:
        n = f.readinto(view)
        if not n:
            raise IndexFileError("truncated while reading")
        chunk = view[:n]
        digest.update(chunk)
        end = position + n
        if end > meta_offset:
            meta += chunk[max(0, meta_offset - position) :]
        position = end
    if digest.digest() != expected:
        raise IndexFileError("checksum mismatch: the file is corrupt")
    return bytes(meta[:meta_length])


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
