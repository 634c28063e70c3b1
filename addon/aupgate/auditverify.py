"""`aupgate audit verify FILE...`: walk the hash chain of audit files; exit 1 at a broken link.

What a pass proves, and what it does not, is in docs/audit-log.md: no line was altered, inserted
or removed in the middle of a chain after it was written. It cannot prove the first line is
genuine, that nothing was cut from the end, or that somebody with write access did not re-hash a
whole file; anchoring (`--anchor`, a last hash noted off-box earlier) narrows the last two.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from .auditchain import Break, FileChain, check_sequence, walk


def add_audit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `audit` (with its `verify` subcommand) on the CLI's subparsers."""
    audit: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="audit log integrity tools"
    )
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = sub.add_parser(
        "verify",
        help="check the hash chain of audit files; exit 1 at the first broken or missing link",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    verify.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="audit files, plain or .gz; rotated files are put in time order and linked up",
    )
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="HASH",
        help="a line hash recorded earlier (e.g. off-box); fail if no line has it",
    )
    verify.set_defaults(func=cmd_verify)
    return audit


def cmd_verify(args: argparse.Namespace) -> int:
    return verify_files(args.files, anchors=args.anchor, out=sys.stdout)


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from handle


def _first_time(path: Path) -> str:
    """The first line's time (for ordering rotated files); unreadable files sort first."""
    try:
        for raw in _lines(path):
            start = raw.find(b'"time": "')
            return raw[start + 9 : start + 36].decode("ascii", "replace") if start != -1 else ""
    except OSError:
        return ""
    return ""


def verify_files(files: Sequence[Path], *, anchors: Sequence[str], out: TextIO) -> int:
    """Walk each file, then the links between consecutive files; print findings; 0 or 1."""
    wanted = frozenset(a.strip().lower() for a in anchors)
    ordered = sorted(files, key=_first_time)
    chains: list[FileChain] = []
    breaks: list[Break] = []
    for path in ordered:
        try:
            chain = walk(str(path), _lines(path), anchors=wanted)
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
