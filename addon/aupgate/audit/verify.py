"""Verifying audit files: walk the hash chain of each, then the links between them.

What a pass proves, and what it does not, is in docs/audit-log.md: no line was altered, inserted
or removed in the middle of a chain after it was written. It cannot prove the first line is
genuine, that nothing was cut from the end, or that somebody with write access did not re-hash a
whole file; anchoring (`--anchor`, a last hash noted off-box earlier) narrows the last two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .chain import Break, FileChain, check_sequence, walk
from .reader import first_time, lines

__all__ = ["verify_files"]


def verify_files(files: Sequence[Path], *, anchors: Sequence[str], out: TextIO) -> int:
    """Walk each file, then the links between consecutive files; print findings; 0 or 1."""
    wanted = frozenset(a.strip().lower() for a in anchors)
    ordered = sorted(files, key=first_time)
    chains: list[FileChain] = []
    breaks: list[Break] = []
    for path in ordered:
        try:
            chain = walk(str(path), lines(path), anchors=wanted)
        except OSError as exc:
            breaks.append(Break(str(path), 0, f"cannot read: {exc.strerror or exc}"))
            continue
        chains.append(chain)
        if chain.broken is not None:
            breaks.append(chain.broken)
    breaks.extend(check_sequence(chains))
    found: set[str] = set()
    for chain in chains:
        found |= chain.hashes_seen
        start = (
            f"chain starts at line 1 ({chain.start_reason})"
            if chain.start_reason
            else "continues a chain from an earlier file"
        )
        state = "BROKEN" if chain.broken else "ok"
        out.write(
            f"{chain.file}: {state}, {chain.lines} line(s), {start}, "
            f"last hash {chain.last_hash or '-'}\n"
        )
    for anchor in sorted(wanted - found):
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
    out.write(f"OK: {len(chains)} file(s), every link holds\n")
    return 0
