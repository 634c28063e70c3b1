"""Verifying audit files: walk the hash chain of each, then the links between them and their ends.

What a pass proves, and what it does not, is in docs/audit-log.md ("Tamper evidence"): no line
was altered, inserted or removed within a chain; no file is missing between two files given;
every chain ends where its writer ended it (closed, rotated into a file given, or still being
written); every anchor is still there. A damaged file (a gzip cut short or corrupted, a file
that cannot be opened) is one finding among the others, never the end of the run.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import orjson

from .chain import Break, FileChain, walk
from .envelope import time_key
from .links import check_links
from .reader import lines

__all__ = ["verify_files"]

_DAMAGED = (OSError, EOFError, zlib.error)  # what reading a damaged (gzip) file raises


class _Reading:
    """The lines of one file; reading stops, instead of raising, where the file is damaged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.error: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            for raw in lines(self.path):
                self.count += 1
                yield raw
        except _DAMAGED as exc:
            self.error = _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, EOFError):
        return "compressed data ends before its end marker (cut short)"
    return str(exc) or type(exc).__name__


def _head(path: Path) -> tuple[str, str | None]:
    """The first line's time (for the order files are listed in) and the hash it continues."""
    reading = _Reading(path)
    for raw in reading:
        try:
            record = orjson.loads(raw)
        except ValueError:
            return "", None
        if not isinstance(record, dict):
            return "", None
        chain = record.get("chain")
        link = chain.get("continues") if isinstance(chain, dict) else record.get("prev")
        return time_key(raw, record), link if isinstance(link, str) else None
    return "", None


def _walk_file(path: Path, wanted: frozenset[str]) -> FileChain:
    reading = _Reading(path)
    chain = walk(str(path), reading, wanted=wanted)
    if reading.error is None:
        return chain
    if reading.count == 0:
        found = Break(str(path), 0, f"cannot read: {reading.error}")
    else:
        found = Break(str(path), reading.count + 1,
                      f"damaged: cannot read past line {reading.count}: {reading.error}")
    if chain.broken is None or chain.broken.line >= reading.count:
        chain = replace(chain, broken=found)  # the damage, not the torn line it leaves
    return chain


def verify_files(files: Sequence[Path], *, anchors: Sequence[str], out: TextIO, as_of: str,
                 partial: bool = False) -> int:
    """Walk each file, then the links between files and how each ends; print; 0 or 1.

    `as_of`: when a still-open file's last line is judged from (now, or when they were copied).
    `partial`: the files are a window of the trail (older files deleted by retention).
    """
    wanted_anchors = frozenset(a.strip().lower() for a in anchors)
    heads = {path: _head(path) for path in files}
    ordered = sorted(files, key=lambda p: heads[p][0])
    links = frozenset(link for _, link in heads.values() if link is not None)
    chains = [_walk_file(path, wanted_anchors | links) for path in ordered]
    breaks = [c.broken for c in chains if c.broken is not None]
    ends = check_links(chains, as_of=as_of, partial=partial)
    breaks += ends.breaks
    found: set[str] = set()
    for chain in chains:
        found |= set(chain.found) & wanted_anchors
        start = (
            f"chain starts at line 1 ({chain.start_reason})"
            if chain.start_reason
            else "continues a chain from an earlier file"
        )
        if chain.broken is not None:
            out.write(f"{chain.file}: BROKEN, {chain.lines} line(s) read, {start}\n")
            continue
        out.write(f"{chain.file}: ok, {chain.lines} line(s), {start}, "
                  f"{ends.ending.get(chain.file, '')}, last hash {chain.last_hash or '-'}\n")
    for anchor in sorted(wanted_anchors - found):
        breaks.append(
            Break(
                "anchor",
                0,
                f"no line hashes to {anchor}: lines were removed or "
                f"rewritten since it was recorded",
            )
        )
    for problem in breaks:
        out.write(f"{problem}\n")
    if breaks:
        out.write(f"FAILED: {len(breaks)} problem(s); the first is {breaks[0]}\n")
        return 1
    out.write(f"OK: {len(chains)} file(s), every link holds, every end is where its writer "
              f"left it\n")
    return 0
