"""The audit line format and its hash chain: tamper evidence for a file of JSON lines.

Public-records laws (MoDOT cites Missouri's Sunshine Law and five-year retention) make it worth
being able to show that an audit file was not edited after the fact. Each line in a file carries
`prev`, the SHA-256 of the previous line's exact bytes, so altering, inserting or removing a line in
the middle breaks the link after it. The first line of a chain has `prev: null` and a `chain` object
saying why a chain starts there (a new file, a rotation, a truncation) and, when the writer knows
it, the hash of the last line it wrote to the previous file (`continues`), so rotated files link up.

The link is spliced into the already rendered line (`...}` becomes `..., "prev": "..."}`) so the
hash covers exactly the bytes on disk and nothing is serialised twice. Everything here is pure:
it takes lines and returns problems; `links` checks how files follow one another and how each
ends, and `verify` reads the files and prints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .envelope import time_key

ChainReason = Literal[
    "new-file", "rotated", "deleted", "truncated", "damaged-tail", "resumed-unreadable"
]


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

CHECKPOINT = "audit_checkpoint"
"""The event the writer itself adds to a file: when it opens the file (`open`), once a minute
(`interval`), as the last line of a file it leaves after a rotation (`rotated`) and as the last
line when it closes the file (`close`). docs/audit-log.md says what `verify` concludes from them."""
CLOSING = ("rotated", "close")


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
    """What walking one file found: its line count, how its chain starts and ends, its hashes."""

    file: str
    lines: int
    start_reason: str | None
    continues: str | None
    first_prev: str | None
    last_hash: str | None
    broken: Break | None
    found: Mapping[str, int] = field(default_factory=dict)  # wanted hash -> its line number
    first_time: str = ""
    last_time: str = ""
    last_checkpoint: str | None = None  # the last line's reason, when it is a checkpoint
    interval_s: float | None = None  # the writer's checkpoint interval, from its last checkpoint
    writes_to: str | None = None  # "HOST:PATH" its writer wrote to, from its checkpoints

    @property
    def link(self) -> str | None:
        """The hash of the line, in another file, that this file's first line follows."""
        return self.continues if self.start_reason is not None else self.first_prev


def walk(name: str, lines: Iterable[bytes], *, wanted: Set[str] = frozenset()) -> FileChain:
    """Check every link of one file's lines; stop at the first break.

    A file's first line either starts a chain (`prev: null` with a `chain` object) or links to
    a line outside the file (`first_prev`), which `links.check_links` matches against the other
    files. Further on, `prev` must equal the hash of the line just before; a chain start
    anywhere but the first line is a break too, since it is where lines before it can have been
    cut off. A file with no line at all is a break: the writer writes a checkpoint as soon as
    it opens a file. `wanted` hashes are looked for and their line numbers kept in `found`.
    """
    previous: str | None = None
    number = 0
    start_reason: str | None = None
    continues: str | None = None
    first_prev: str | None = None
    found: dict[str, int] = {}
    first_time = last_time = ""
    last_checkpoint: str | None = None
    interval: float | None = None
    writes_to: str | None = None

    def result(broken: Break | None) -> FileChain:
        return FileChain(name, number, start_reason, continues, first_prev, previous, broken,
                         found, first_time, last_time, last_checkpoint, interval, writes_to)

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
        if wanted and previous in wanted:
            found[previous] = number
        last_time = time_key(raw, record)
        if number == 1:
            first_time = last_time
        last_checkpoint = None
        if record.get("event") == CHECKPOINT:
            reason = record.get("reason")
            last_checkpoint = reason if isinstance(reason, str) else "?"
            every = record.get("interval_s")
            if isinstance(every, int | float) and not isinstance(every, bool) and every > 0:
                interval = float(every)
            writes_to = f"{record.get('host')}:{record.get('file')}"
    if number == 0:
        return result(Break(name, 0, "no lines at all: the writer writes one as soon as it opens "
                                     "a file, so this file was emptied, or logrotate created it "
                                     "a moment ago and the writer has not opened it yet (it "
                                     "does at once on SIGHUP, else within a minute)"))
    return result(None)
