"""Compiling the lists sources.yaml names into one index file, and the digest that dates it.

The compiler reads the lists with the same readers as `load_lists`, so an entry means the same
thing compiled or not, and records for every entry the file and line it came from (for
`aupgate categories lookup`) and the same load report (counts, every rejected line).

`sources_digest` names the exact input: sources.yaml, every list file's bytes, the corrections
file, and the code that turns lines into entries. An index carries the digest it was compiled
from; when the digest of the files on disk differs, the index is stale. The code is part of it
because a fix to host normalisation changes what the same lines mean.
"""

from __future__ import annotations

import functools
import hashlib
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import idna
import marisa_trie  # type: ignore[import-not-found, import-untyped, unused-ignore]

from aupgate import hostname, normalise

from . import compiled, corrections, entries, ids, indexfile, readers
from .compiled import CORRECTED, HAS_URLS, host_key
from .corrections import Corrections
from .ids import CATEGORY_IDS
from .indexfile import FORMAT_VERSION, provenance_arrays, write_index
from .readers import Rejected, Skipped, read_numbered, rejection, source_files
from .sources import Sources, SourceSpec, read_corrections_file, read_source_config

__all__ = ["CompileStats", "compile_sources", "sources_digest"]

_CHUNK = 1 << 20
_PROGRESS_EVERY = 1 << 16

ProgressFn = Callable[[int, str], None]


@functools.cache
def _code_fingerprint() -> bytes:
    """The modules whose code decides what a list line means, and the index format version."""
    digest = hashlib.sha256(f"aupgate-index-format-{FORMAT_VERSION}\0".encode())
    for module in (ids, entries, readers, hostname, normalise, compiled, corrections, indexfile):
        file = module.__file__
        if file is not None:
            digest.update(Path(file).read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(str(getattr(idna, "__version__", "")).encode())
    return digest.digest()


def sources_digest(sources_file: Path, config: Sources | None = None) -> str:
    """sha256 over the code fingerprint, sources.yaml, every list file and the corrections file,
    names included.

    Reads every byte (about 10 ms for the shipped lists, tens of ms for millions of entries):
    the index is trusted only for the exact bytes it was compiled from, not for a timestamp.

    Raises:
        CategoryError: sources.yaml is invalid (from `read_source_config`).
    """
    if config is None:
        config = read_source_config(sources_file)
    base = sources_file.parent
    digest = hashlib.sha256(_code_fingerprint())
    digest.update(sources_file.read_bytes())
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    files = [f for spec in config.specs for f in source_files(spec.path, spec.format)]
    if config.corrections is not None:
        files.append(config.corrections)
    for file in files:
        digest.update(b"\0" + relative(file, base).encode() + b"\0")
        try:
            with file.open("rb") as f:
                while n := f.readinto(view):
                    digest.update(view[:n])
        except OSError:
            digest.update(b"\0unreadable\0")
    return digest.hexdigest()


def relative(path: Path, base: Path) -> str:
    """A list's name relative to the sources folder, so an index survives moving the folder."""
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


class CompileStats(dict[str, Any]):
    """What a compile produced: entries, keys, rejected lines, seconds (filled by the caller)."""


class _Collector:
    """Entries as trie keys, with category masks, URL flags and provenance in flat arrays.

    Millions of entries: everything per entry is a slot in an `array`, not a Python object, and
    "seen in this source already" is the number of the last source that gave the key.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.masks = array("I")
        self.flags = bytearray()
        self.last_source = array("i")
        self.rec_keys = array("I")
        self.rec_files = array("H")
        self.rec_lines = array("I")

    def local(self, key: str) -> int:
        number = self.ids.get(key)
        if number is None:
            number = len(self.ids)
            self.ids[key] = number
            self.masks.append(0)
            self.flags.append(0)
            self.last_source.append(-1)
        return number

    def add(
        self, key: str, url_host: str | None, bit: int, source: int, file: int, line: int
    ) -> bool:
        """Add one entry occurrence; False when this source gave the same entry before."""
        number = self.local(key)
        self.rec_keys.append(number)
        self.rec_files.append(file)
        self.rec_lines.append(line)
        if url_host is not None:
            self.flags[self.local(url_host)] |= HAS_URLS
        if self.last_source[number] == source:
            return False
        self.last_source[number] = source
        self.masks[number] |= bit
        return True

    def flag_corrections(self, found: Corrections) -> None:
        """Mark the host key of every correction's entry, adding it as a key if it is none."""
        for correction in found.items:
            self.flags[self.local(host_key(correction.scope.host))] |= CORRECTED


def compile_sources(
    sources_file: Path,
    out: BinaryIO,
    *,
    digest: str | None = None,
    progress: ProgressFn | None = None,
) -> CompileStats:
    """Read every list sources.yaml names and write the compiled index to `out`.

    Args:
        sources_file: sources.yaml.
        out: a seekable binary file (the caller writes to a temporary file and renames it).
        digest: `sources_digest` taken *before* reading, so that a list changed while compiling
            leaves an index that is already stale rather than one that is wrongly current.
        progress: called now and then with (lines read so far, current list).

    Raises:
        CategoryError: sources.yaml or the corrections file is invalid, or a list cannot be read
            at all.
    """
    config = read_source_config(sources_file)
    specs = config.specs
    found = read_corrections_file(config.corrections)
    if digest is None:
        digest = sources_digest(sources_file, config)
    base = sources_file.parent
    collector = _Collector()
    files: dict[tuple[Path, int], int] = {}  # (list file, source number) -> file number
    report_sources: list[list[Any]] = []
    problems: list[list[Any]] = []
    done = 0
    for number, spec in enumerate(specs):
        bit = 1 << CATEGORY_IDS.index(spec.category)
        entries = rejected = duplicates = skipped = 0
        label = relative(spec.path, base)
        for file, line, result in read_numbered(spec.path, spec.format):
            done += 1
            if progress is not None and not done % _PROGRESS_EVERY:
                progress(done, label)
            if isinstance(result, Rejected):
                rejected += 1
                problem = rejection(file, result)
                problems.append([relative(file, base), problem.line, problem.message])
                continue
            if isinstance(result, Skipped):
                skipped += 1
                continue
            file_number = files.setdefault((file, number), len(files))
            hk = host_key(result.host)
            if result.path is None:
                new = collector.add(hk, None, bit, number, file_number, line)
            else:
                new = collector.add(hk + result.path, hk, bit, number, file_number, line)
            if new:
                entries += 1
            else:
                duplicates += 1
        report_sources.append([label, spec.category, entries, rejected, duplicates, skipped])
    if progress is not None:
        progress(done, "into the index file")
    collector.flag_corrections(found)
    counts, total = _counts(collector.masks)
    meta: dict[str, Any] = {
        "digest": digest,
        "entries": total,
        "category_counts": counts,
        "sources": [_spec_meta(spec, base) for spec in specs],
        "files": [[relative(f, base), source] for f, source in files],
        "report": {"sources": report_sources, "problems": problems},
        "corrections": found.as_records(lambda name: relative(Path(name), base)),
    }
    keys = len(collector.ids)
    _write(out, collector, meta)
    return CompileStats(entries=total, keys=keys, lines=done, rejected=len(problems), digest=digest)


class _Trie(Protocol):
    def get(self, key: str, default: int = ...) -> int: ...
    def tobytes(self) -> bytes: ...


def _write(out: BinaryIO, collector: _Collector, meta: dict[str, Any]) -> None:
    """Build the trie, number each key's class (masks and flags), and write the file."""
    keys = list(collector.ids)
    del collector.ids
    trie = cast(_Trie, marisa_trie.Trie(keys))
    local_to_id = array("I", bytes(4 * len(keys)))
    for local, key in enumerate(keys):
        local_to_id[local] = trie.get(key)
    del keys
    classes: dict[tuple[int, int], int] = {}
    of_key = [
        classes.setdefault(c, len(classes))
        for c in zip(collector.masks, collector.flags, strict=True)
    ]
    code = "H" if len(classes) <= 0xFFFF else "I"
    values = array(code, bytes(array(code).itemsize * len(of_key)))
    for local, klass in enumerate(of_key):
        values[local_to_id[local]] = klass
    records = (collector.rec_keys, collector.rec_files, collector.rec_lines)
    meta["keys"] = len(of_key)
    meta["classes"] = [list(c) for c in classes]
    write_index(
        out,
        trie=trie.tobytes(),
        values=values,
        provenance=provenance_arrays(records, local_to_id, len(of_key)),
        meta=meta,
    )


def _counts(masks: array[int]) -> tuple[dict[str, int], int]:
    """Distinct entries per category (CATEGORY_IDS order), and distinct entries in all."""
    per_mask: dict[int, int] = {}
    for mask in masks:
        per_mask[mask] = per_mask.get(mask, 0) + 1
    counts = dict.fromkeys(CATEGORY_IDS, 0)
    total = 0
    for mask, n in per_mask.items():
        if mask:
            total += n
        for i, category in enumerate(CATEGORY_IDS):
            if mask >> i & 1:
                counts[category] += n
    return counts, total


def _spec_meta(spec: SourceSpec, base: Path) -> dict[str, Any]:
    return {
        "path": relative(spec.path, base),
        "format": spec.format,
        "category": spec.category,
        "source": spec.source,
        "licence": spec.licence,
        "snapshot": spec.snapshot,
        "line": spec.line,
    }
