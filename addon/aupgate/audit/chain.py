"""The audit line format and its hash chain: tamper evidence for a file of JSON lines.

Public-records laws (MoDOT cites Missouri's Sunshine Law and five-year retention) make it worth
being able to show that an audit file was not edited after the fact. Each line in a file carries
`prev`, the SHA-256 of the previous line's exact bytes, so altering, inserting or removing a line in
the middle breaks the link after it. The first line of a chain has `prev: null` and a `chain` object
saying why a chain starts there (a new file, a rotation, a truncation) and, when the writer knows
it, the hash of the last line it wrote to the previous file (`continues`), so rotated files link up.

The link is spliced into the already rendered line (`...}` becomes `..., "prev": "..."}`) so the
hash covers exactly the bytes on disk and nothing is serialised twice. Everything here is pure:
it takes lines and returns problems; `verify` reads the files and prints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

ChainReason = Literal["new-file", "rotated", "truncated", "damaged-tail", "resumed-unreadable"]


def line_hash(line: bytes) -> str:
    """SHA-256 (hex) of one line's bytes without its newline: what the next line's `prev` holds."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def link(rendered: bytes, prev: str | None, chain: dict[str, Any] | None = None) -> bytes:
    """A rendered JSON object line with `prev` (and, at a chain start, `chain`) appended.

    `rendered` is one JSON object without a newline, as `envelope.render` produces it; the
    fields are added before its closing brace so that they come last, after the event's own.
    """
    if not rendered.endswith(b"}") or rendered == b"{}":
        raise ValueError("an audit line must be a non-empty JSON object")
    extra = b', "prev": null' if prev is None else b', "prev": "' + prev.encode("ascii") + b'"'
    if chain is not None:
        extra += b', "chain": ' + json.dumps(chain).encode("utf-8")
    return rendered[:-1] + extra + b"}"


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken or missing link in one file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class FileChain:
    """What walking one file found: its line count, how its chain starts, its last hash."""

    file: str
    lines: int
    start_reason: str | None
    continues: str | None
    first_prev: str | None
    last_hash: str | None
    broken: Break | None
    hashes_seen: frozenset[str] = frozenset()


def walk(name: str, lines: Iterable[bytes], *, anchors: frozenset[str] = frozenset()) -> FileChain:
    """Check every link of one file's lines; stop at the first break.

    A file's first line either starts a chain (`prev: null` with a `chain` object) or links to
    a line outside the file (`first_prev`), which `check_sequence` matches against the file
    before it. Further on, `prev` must equal the hash of the line just before; a chain start
    anywhere but the first line is a break too, since it is where lines before it can have been
    cut off.
    """
    previous: str | None = None
    number = 0
    start_reason: str | None = None
    continues: str | None = None
    first_prev: str | None = None
    found: set[str] = set()

    def result(broken: Break | None) -> FileChain:
        return FileChain(
            name, number, start_reason, continues, first_prev, previous, broken, frozenset(found)
        )

    for number, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            return result(Break(name, number, "last line is incomplete (no newline): torn write"))
        try:
            record = orjson.loads(raw)
        except ValueError:
            return result(Break(name, number, "line is not JSON: damaged or partly written"))
        if not isinstance(record, dict):
            return result(Break(name, number, "line is not a JSON object"))
        if "prev" not in record:
            return result(Break(name, number, "no chain link ('prev' missing)"))
        prev = record["prev"]
        chain = record.get("chain")
        if prev is None:
            if not isinstance(chain, dict):
                return result(Break(name, number, "'prev' is null but no 'chain' says why"))
            if number != 1:
                why = chain.get("reason", "?")
                return result(
                    Break(
                        name,
                        number,
                        f"chain restarts in mid-file ({why}): the lines before cannot be "
                        f"linked to the ones after",
                    )
                )
            start_reason = str(chain.get("reason"))
            raw_continues = chain.get("continues")
            continues = raw_continues if isinstance(raw_continues, str) else None
        elif not isinstance(prev, str):
            return result(Break(name, number, "'prev' is not a hash"))
        elif number == 1:
            first_prev = prev
        elif prev != previous:
            return result(
                Break(
                    name,
                    number,
                    f"'prev' does not match line {number - 1}: a line was altered, "
                    f"inserted or removed here",
                )
            )
        previous = line_hash(raw)
        if anchors and previous in anchors:
            found.add(previous)
    return result(None)


def check_sequence(chains: list[FileChain]) -> Iterator[Break]:
    """Breaks between files given in time order: a file that continues a chain whose last line
    is in no file before it.

    The files may hold several chains side by side (one per gateway worker, each rotated on its
    own), so the file a chain continues from is looked for among all the earlier files, not
    only the one just before.
    """
    ends: dict[str | None, FileChain] = {}  # last line's hash -> the earlier file ending with it
    for chain in chains:
        if chain.broken is None:
            if chain.start_reason is None and chain.first_prev is not None:
                if chain.first_prev not in ends:
                    yield Break(
                        chain.file,
                        1,
                        f"the chain does not start here: line 1 links to {chain.first_prev}, "
                        f"the last line of another file; give that file before this one",
                    )
            elif chain.continues is not None and chain.continues not in ends:
                yield Break(
                    chain.file,
                    1,
                    f"continues from a line hashed {chain.continues}, but no file before it "
                    f"ends with that line: a file in between is missing",
                )
        ends[chain.last_hash] = chain
