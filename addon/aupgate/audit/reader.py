"""Reading audit files back: the one way to open one (gzipped or not), follow one, and say which
period a question covers.

Audit files are JSON lines in time order, one file per gateway worker and per rotation, some of
them gzipped by logrotate. `review`, `report` and `verify` all read them through here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import orjson

from aupgate.files import open_lines

from .envelope import HEAD, format_time, time_key

__all__ = [
    "ReviewError",
    "check_audit_file",
    "first_time",
    "follow",
    "last_line",
    "lines",
    "open_lines",
    "parse_when",
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TAIL_BLOCK = 64 * 1024


class ReviewError(Exception):
    """Bad arguments or unreadable input for review or report: the command prints it, exits 2."""


def lines(path: Path) -> Iterator[bytes]:
    """The lines of an audit file, plain or gzip, each with its newline (the last may lack it)."""
    with open_lines(path) as handle:
        yield from handle


def first_time(path: Path) -> str:
    """The first line's time (for ordering rotated files); unreadable files sort first."""
    try:
        for raw in lines(path):
            if raw.startswith(HEAD):
                return time_key(raw)
            try:
                record = orjson.loads(raw)
            except ValueError:
                return ""
            return time_key(raw, record) if isinstance(record, dict) else ""
    except (OSError, EOFError):
        return ""
    return ""


def check_audit_file(path: Path) -> None:
    """Raise ReviewError unless `path` exists and reads as an audit log (or is empty).

    Its first line must be an aupgate event (a JSON object with `event` and `time`): a report of
    the wrong file would otherwise say "0 decisions" and exit 0, as if nothing had happened.
    """
    if not path.exists():
        raise ReviewError(f"{path}: no such file")
    if path.is_dir():
        raise ReviewError(f"{path}: is a directory, not an audit log")
    try:
        for raw in lines(path):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except ValueError:
                record = None
            if not (isinstance(record, dict) and "event" in record and "time" in record):
                shown = raw[:60].decode("utf-8", "replace").rstrip()
                raise ReviewError(f"{path}: not an aupgate audit log (its first line is "
                                  f"{shown!r})")
            return
    except (OSError, EOFError) as exc:
        raise ReviewError(f"{path}: {exc}") from exc


def last_line(path: Path) -> tuple[bytes | None, bool]:
    """The last complete line of a file (None when there is none) and whether it ends in a newline.

    Reads backwards in blocks, so resuming a multi-gigabyte file costs one small read.
    """
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return None, True
        buffer = b""
        position = size
        while position > 0 and buffer.count(b"\n") < 2:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
    ends_clean = buffer.endswith(b"\n")
    end = len(buffer) - 1 if ends_clean else buffer.rfind(b"\n")
    if end < 0:
        return None, ends_clean
    body = buffer[:end]
    return body[body.rfind(b"\n") + 1 :], ends_clean


def parse_when(text: str, now: datetime) -> str:
    """`--since`/`--until`: `2h`, `15m`, `7d` back from now, or ISO-8601 (UTC when no offset).

    Returned as fixed-width UTC text, comparable with `envelope.time_key`.
    """
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        return format_time(now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReviewError(
            f"'{text}' is neither a duration (90s, 15m, 2h, 7d, 2w) nor an ISO-8601 time"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_time(moment)


def follow(
    path: Path,
    *,
    wait: Callable[[], None],
    from_start: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """Lines appended to `path`, forever (until `stop()`), across rotations.

    Rename rotation: the path names a new file (another inode); the old one is read to its end
    first, then the new one from its start. copytruncate: the file is shorter than what was read;
    it is read again from its start. Partial lines are held until their newline arrives. `wait`
    is called whenever there is nothing new (the command sleeps a poll interval there).
    """
    handle: BinaryIO | None = None
    ident = (0, 0)
    pending = b""
    while not stop():
        if handle is None:
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                wait()
                continue
            st = os.fstat(handle.fileno())
            ident = (st.st_dev, st.st_ino)
            if not from_start:
                handle.seek(0, os.SEEK_END)
            from_start = True  # every later file is read whole
        chunk = handle.read(65536)
        if chunk:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line + b"\n"
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            wait()  # renamed away, the new file not made yet
            continue
        if (st.st_dev, st.st_ino) != ident:
            rest = pending + handle.read()  # what was written to the old file after our EOF
            *complete, _torn = rest.split(b"\n")
            for line in complete:
                yield line + b"\n"
            handle.close()
            handle, pending = None, b""
            continue
        if st.st_size < handle.tell():
            handle.seek(0)
            pending = b""
            continue
        wait()
    if handle is not None:
        handle.close()
