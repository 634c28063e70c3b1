"""How audit files follow one another, and how each one ends: the checks across files.

A folder of audit files holds several chains side by side (one per gateway worker, each rotated
on its own, and a new one whenever a writer starts on an empty file), so which file continues
which is read from the hashes, not from names or order: a file whose first line continues a
chain names the hash of the line it follows, and that line must be the last line of another
file given. Then every file that nothing continues is the end of a chain, and the writer's
checkpoints (`chain.CHECKPOINT`) say how a genuine end looks:

- `close`: the writer closed the file (the gateway stopped, or its audit file changed);
- `rotated`: the writer left the file after a rotation, so a file given must continue it;
- otherwise the writer is still writing it, and then, since it writes a checkpoint every
  `interval_s` seconds even when idle, its last line is recent.

An end that is none of these was cut (lines removed from the end of the file) or its writer
died or hung there. Files written before checkpoints existed have none, and their ends are not
judged. Pure: walked files and a time in, problems and a description of each end out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .chain import Break, FileChain

__all__ = ["Ends", "check_links", "quiet_limit"]


def quiet_limit(interval_s: float) -> float:
    """How long a live file may go without a line: two missed checkpoints and a minute's slack
    (the writer's timer is a thread, and a busy or suspended machine delays it)."""
    return 2 * interval_s + 60


@dataclass(frozen=True, slots=True)
class Ends:
    """The outcome: every problem found between files, and how each file ends, by name."""

    breaks: list[Break]
    ending: dict[str, str]


def _seconds_between(earlier: str, later: str) -> float | None:
    """Seconds from one fixed-width UTC time to another (None when either is unreadable)."""
    try:
        start = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
        end = datetime.fromisoformat(later.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()


def check_links(chains: Sequence[FileChain], *, as_of: str, partial: bool = False) -> Ends:
    """Match every continuing file to the file it continues, then judge every end.

    `as_of`: the time (`envelope.format_time` text) a live file's last line is compared with.
    `partial`: the files are a window of a longer trail (the oldest ones removed by retention),
    so a file may continue one that is not given; a missing *later* file is still found.
    """
    ends = {c.last_hash: c for c in chains if c.broken is None and c.last_hash is not None}
    continued_by: dict[str, FileChain] = {}
    breaks: list[Break] = []
    ending: dict[str, str] = {}
    for chain in chains:
        link = chain.link
        if chain.broken is not None or link is None:
            continue
        before = ends.get(link)
        if before is not None and before is not chain:
            continued_by[before.file] = chain
            continue
        inside = [(o, o.found[link]) for o in chains if o is not chain and link in o.found]
        if inside:
            other, line = inside[0]
            if other.broken is None:
                breaks.append(Break(
                    chain.file, 1,
                    f"continues from line {line} of {other.file}, but that file goes on after "
                    f"it: lines {line + 1}-{other.lines} there were added after its writer left"))
        elif partial:
            ending[chain.file] = "continues a file not given"
        elif chain.start_reason is None:
            breaks.append(Break(
                chain.file, 1,
                f"the chain does not start here: line 1 links to {link}, the last line of "
                f"another file, and no file given ends with it"))
        else:
            breaks.append(Break(
                chain.file, 1,
                f"continues from a line hashed {link}, but no file given ends with that line: "
                f"a file before it is missing, or lines were cut from the end of one"))
    for chain in chains:
        if chain.broken is not None:
            continue
        later = _later_file_of_its_writer(chain, chains)
        ending[chain.file] = _judge_end(chain, continued_by.get(chain.file), later, as_of,
                                        breaks, ending.get(chain.file))
    return Ends(breaks, ending)


def _later_file_of_its_writer(chain: FileChain, chains: Sequence[FileChain]) -> FileChain | None:
    """A file that the same path's writer started after this file's last line: proof that the
    writer no longer wrote this one, whatever time it is now."""
    if chain.writes_to is None:
        return None
    later = [o for o in chains if o is not chain and o.writes_to == chain.writes_to
             and o.first_time > chain.last_time]
    return min(later, key=lambda o: o.first_time) if later else None


def _judge_end(chain: FileChain, successor: FileChain | None, later: FileChain | None,
               as_of: str, breaks: list[Break], start_note: str | None) -> str:
    """How one file ends; a problem is appended to `breaks` when the end is not genuine."""
    note = f"{start_note}; " if start_note else ""
    if successor is not None:
        return f"{note}continued by {successor.file}"
    if chain.last_checkpoint == "close":
        return f"{note}closed by its writer"
    if chain.last_checkpoint == "rotated":
        breaks.append(Break(
            chain.file, chain.lines,
            "its writer left this file at a rotation, but no file given continues from its "
            "last line: the next file of this chain is missing"))
        return f"{note}rotated, next file missing"
    if chain.interval_s is None:
        return f"{note}no checkpoints (an older writer): its end cannot be checked"
    if later is not None:
        breaks.append(Break(
            chain.file, chain.lines,
            f"ends at line {chain.lines} ({chain.last_time}) without its writer's closing "
            f"checkpoint, and its writer started {later.file} after that: lines were cut from "
            f"the end of this file, or its writer was killed then"))
        return f"{note}ends abruptly"
    quiet = _seconds_between(chain.last_time, as_of)
    if quiet is None or quiet <= quiet_limit(chain.interval_s):
        return f"{note}open: written {max(quiet or 0, 0):.0f} s before {as_of}"
    breaks.append(Break(
        chain.file, chain.lines,
        f"ends at line {chain.lines} ({chain.last_time}) without its writer's closing "
        f"checkpoint, {quiet:.0f} s before {as_of}, though the writer checkpoints every "
        f"{chain.interval_s:g} s: lines were cut from the end of this file, or its writer "
        f"was killed or hung then"))
    return f"{note}ends abruptly"
