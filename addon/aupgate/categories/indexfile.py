"""The compiled index's file: writing it, and reading it back verified into the process's memory.

Why read and not `mmap`: a mapped file is trusted for as long as it is mapped. Truncated under the
process, it kills it with SIGBUS on the next lookup that touches a page past the new end; copied
over in place, its pages change under a trie that was checked against other bytes (lookups miss
silently, or marisa reads garbage and the process dies with SIGSEGV). `MAP_PRIVATE` does not help:
pages not yet copied still come from the file, and a page past a new end still faults. So the
file is read once, hashed while it is read, and answers come from the process's own copy of
exactly the bytes that were verified; nothing done to the file afterwards can reach them. The
price is memory per process instead of pages shared through the page cache, and only for what a
request needs: the trie and the class of each key (the "hot" part, about 4.6 MiB of the shipped
12 MiB file). The provenance of every entry, which only `aupgate categories lookup` reads, is read
again on demand and must hash to the same checksum.

Layout (little-endian; sections 8-byte aligned):

    preamble   magic, format version, flags, total size, meta offset and length, end of the hot
               part, sha256 of everything after the preamble
    trie       marisa-trie bytes                                  } the hot part: kept in memory
    values     one class number per key id (uint16, or uint32)    }
    prov_*     per key id, the (file, line) of every list line that gave the entry
    meta       JSON: sources and their provenance, the load report, classes, corrections, sections

The file is always written under a temporary name, flushed to disk and renamed into place
(`cache`), so a reader sees the old file or the new one; anything else is refused here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

__all__ = [
    "BODY_START",
    "FORMAT_VERSION",
    "MAGIC",
    "FileIdentity",
    "IndexFileError",
    "Verified",
    "file_identity",
    "provenance_arrays",
    "read_verified",
    "section",
    "write_index",
]

MAGIC = b"AUPIDX\x00\n"
FORMAT_VERSION = 2  # 2: the hot part in the preamble, corrections in the metadata
# magic, version, flags, size, meta offset, meta length, end of the hot part, sha256 of the body
_PREAMBLE = "<8sIIQQQQ32s"
BODY_START = 80  # the preamble's size
_CHUNK = 1 << 20


class IndexFileError(Exception):
    """A compiled index that must not be used: not ours, another version, truncated, corrupt."""


class IndexVersionError(IndexFileError):
    """An index another aupgate version wrote: sound, but in a format this one does not read.

    Kept apart from damage because an upgrade meets it on every machine: it is rebuilt like a
    stale index, with a warning, where a damaged file is an error.
    """


class FileIdentity(NamedTuple):
    """What tells one file at a path from another, or from itself after an in-place write."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def _identity(st: os.stat_result) -> FileIdentity:
    return FileIdentity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_identity(path: Path) -> FileIdentity | None:
    """The identity of the file now at `path`; None when there is none (or it cannot be seen)."""
    try:
        return _identity(path.stat())
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Verified:
    """An index file read and checked: its bytes up to `data`'s length, its metadata, and
    which file it was (the identity of the open file, taken before reading)."""

    data: bytearray  # the file from offset 0: the hot part, or all of it (`whole`)
    meta: dict[str, Any]
    checksum: bytes
    identity: FileIdentity


# --- writing -------------------------------------------------------------------------------------


def write_index(
    out: BinaryIO,
    *,
    trie: bytes,
    values: array[int],
    provenance: tuple[array[int], array[int], array[int]],
    meta: dict[str, Any],
) -> None:
    """Write a compiled index to a seekable binary file (the caller renames it into place).

    Args:
        trie: the marisa trie's bytes.
        values: the class number of each key, by trie key id.
        provenance: (offsets by key id, file numbers, line numbers).
        meta: JSON-able facts; the sections and the value type code are added here.
    """
    body = hashlib.sha256()
    out.seek(BODY_START)
    position = BODY_START
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

    put("trie", trie)
    put("values", values)
    hot_end = position
    offsets, files, lines = provenance
    put("prov_offsets", offsets)
    put("prov_files", files)
    put("prov_lines", lines)
    meta = {**meta, "sections": sections, "value_code": values.typecode}
    raw_meta = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    meta_offset = position
    out.write(raw_meta)
    body.update(raw_meta)
    size = meta_offset + len(raw_meta)
    out.seek(0)
    out.write(_pack(size, meta_offset, len(raw_meta), hot_end, body.digest()))


def _pack(size: int, meta_offset: int, meta_length: int, hot_end: int, digest: bytes) -> bytes:
    return struct.pack(
        _PREAMBLE, MAGIC, FORMAT_VERSION, 0, size, meta_offset, meta_length, hot_end, digest
    )


# --- reading -------------------------------------------------------------------------------------


def read_verified(path: Path, *, whole: bool = False) -> Verified:
    """Read an index file into memory, checking magic, version, size and sha256 as it is read.

    Only the bytes that were hashed are ever used: the file may change while it is read (then
    the checksum or the size disagrees and it is refused) or afterwards (then it no longer
    matters). One open file from start to end, its identity taken from that open file.

    Args:
        whole: keep every byte (for provenance), not only the hot part.

    Raises:
        FileNotFoundError: there is no such file.
        IndexFileError: the file is not a usable index of this version.
        OSError: it cannot be read.
    """
    with path.open("rb") as f:
        identity = _identity(os.fstat(f.fileno()))
        head = f.read(BODY_START)
        if len(head) < BODY_START:
            raise IndexFileError("truncated: shorter than the preamble")
        magic, version, _flags, size, meta_offset, meta_length, hot_end, expected = struct.unpack(
            _PREAMBLE, head
        )
        if magic != MAGIC:
            raise IndexFileError("bad magic: not an aupgate category index")
        if version != FORMAT_VERSION:
            raise IndexVersionError(
                f"format version {version}, this aupgate reads {FORMAT_VERSION}"
            )
        if identity.size != size:
            raise IndexFileError(
                f"truncated or extended: {identity.size} bytes, the preamble says {size}"
            )
        if not BODY_START <= hot_end <= meta_offset or meta_offset + meta_length != size:
            raise IndexFileError("sections lie outside the file")
        keep = size if whole else hot_end
        data = bytearray(keep)
        data[:BODY_START] = head
        digest = hashlib.sha256()
        view = memoryview(data)
        if f.readinto(view[BODY_START:]) != keep - BODY_START:
            raise IndexFileError("truncated while reading")
        digest.update(view[BODY_START:])
        meta_raw = _hash_rest(f, digest, keep, size, meta_offset)
        if whole:
            meta_raw = bytes(view[meta_offset:size])
    if digest.digest() != expected:
        raise IndexFileError("checksum mismatch: the file is corrupt or changed while read")
    try:
        meta = json.loads(meta_raw)
        if not isinstance(meta, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError) as e:
        raise IndexFileError(f"unreadable metadata: {e}") from e
    return Verified(data, meta, expected, identity)


def _hash_rest(
    f: io.BufferedReader, digest: Any, position: int, size: int, meta_offset: int
) -> bytes:
    """Hash the file from `position` to its end in chunks; return the metadata bytes seen."""
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
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
    if f.read(1):
        raise IndexFileError("extended while reading")
    return bytes(meta)


def section(verified: Verified, name: str) -> memoryview:
    """One section of a verified file, as a view into the bytes that were read."""
    try:
        offset, length = verified.meta["sections"][name]
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFileError(f"no section {name}") from e
    if offset < BODY_START or offset + length > len(verified.data):
        raise IndexFileError(f"section {name} lies outside the part read")
    return memoryview(verified.data)[offset : offset + length]


def provenance_arrays(
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
