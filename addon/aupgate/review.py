"""`aupgate review`: the audit log tail an administrator reads, filtered, merged, or followed.

Audit files are JSON lines in time order, one file per gateway worker and per rotation, some of
them gzipped. Reviewing means reading several at once in time order (a heap merge of the sorted
streams: nothing is loaded whole), or following the live one through logrotate (`-f`, like
`tail -F`), keeping only the events a question is about. Output is one readable line per event,
coloured by action on a terminal, or with `--json` the lines exactly as written, for `jq`.

The reading helpers here (`open_lines`, `parse_when`, `time_key`, `loads`) are shared with
`aupgate report`.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import ipaddress
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .auditchain import format_time, loads

Record = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_ENVELOPE = b'{"schema_version": 1, "time": "'
_TIME_AT = slice(len(_ENVELOPE), len(_ENVELOPE) + 27)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReviewError(Exception):
    """Bad arguments or unreadable input: the command prints it and exits 2."""


# --------------------------------------------------------------------------- reading


def open_lines(path: Path) -> BinaryIO:
    """A binary line reader for a plain or gzipped audit file (gzip by magic, not by name)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def time_key(raw: bytes, record: Record | None = None) -> str:
    """The event's time as fixed-width UTC text, straight from the line when it has our envelope."""
    if raw.startswith(_ENVELOPE):
        return raw[_TIME_AT].decode("ascii", "replace")
    value = record.get("time") if record is not None else None
    if not isinstance(value, str):
        return ""
    if len(value) == 27 and value.endswith("Z"):
        return value
    try:
        return format_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return value


def parse_when(text: str, now: datetime) -> str:
    """`--since`/`--until`: `2h`, `15m`, `7d` back from now, or ISO-8601 (UTC when no offset).

    Returned as fixed-width UTC text, comparable with `time_key`.
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


@dataclass(frozen=True, slots=True)
class Selection:
    """Which events a review is about: every given condition must hold, any listed value will do."""

    agencies: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    clients: tuple[Network, ...] = ()
    categories: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()
    events: frozenset[str] = frozenset()
    since: str | None = None
    until: str | None = None

    def in_period(self, key: str) -> bool:
        return (self.since is None or key >= self.since) and (
            self.until is None or key < self.until
        )

    def matches(self, record: Record) -> bool:
        """Whether the event passes every filter; events without a filtered field do not."""
        if self.events and record.get("event") not in self.events:
            return False
        if self.agencies and record.get("agency") not in self.agencies:
            return False
        if self.actions and record.get("action") not in self.actions:
            return False
        if self.users:
            user = record.get("user")
            if not isinstance(user, str) or user.lower() not in self.users:
                return False
        if self.categories:
            cats = record.get("categories")
            if not isinstance(cats, list) or self.categories.isdisjoint(cats):
                return False
        if self.hosts:
            host = record.get("host") or record.get("sni")
            if not isinstance(host, str) or not any(
                host == h or host.endswith("." + h) for h in self.hosts
            ):
                return False
        if self.clients:
            try:
                address = ipaddress.ip_address(str(record.get("client")))
            except ValueError:
                return False
            if not any(address in net for net in self.clients):
                return False
        return True


def selection_from(args: argparse.Namespace, now: datetime) -> Selection:
    """The `Selection` the command-line filters describe."""
    try:
        clients = tuple(ipaddress.ip_network(c, strict=False) for c in args.client)
    except ValueError as exc:
        raise ReviewError(f"--client: {exc}") from exc
    return Selection(
        agencies=frozenset(args.agency),
        users=frozenset(u.lower() for u in args.user),
        clients=clients,
        categories=frozenset(args.category),
        actions=frozenset(args.action),
        hosts=tuple(h.lower().rstrip(".") for h in args.host),
        events=frozenset(args.event),
        since=parse_when(args.since, now) if args.since else None,
        until=parse_when(args.until, now) if args.until else None,
    )


def _select(lines: Iterable[bytes], selection: Selection) -> Iterator[tuple[str, bytes, Record]]:
    """(time key, raw line, record) of the lines that pass; damaged lines are skipped."""
    for raw in lines:
        if not raw.strip():
            continue
        if raw.startswith(_ENVELOPE) and not selection.in_period(raw[_TIME_AT].decode()):
            continue  # the cheap pre-filter: most lines of a long log are out of the period
        try:
            record = loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        key = time_key(raw, record)
        if selection.in_period(key) and selection.matches(record):
            yield key, raw, record


def _file_events(path: Path, selection: Selection) -> Iterator[tuple[str, bytes, Record]]:
    with open_lines(path) as handle:
        yield from _select(handle, selection)


def merged(paths: Sequence[Path], selection: Selection) -> Iterator[tuple[str, bytes, Record]]:
    """The selected events of several time-ordered files, in time order (a streaming merge)."""
    for path in paths:
        if not path.exists():
            raise ReviewError(f"{path}: no such file")
    streams = [_file_events(path, selection) for path in paths]
    return heapq.merge(*streams, key=lambda item: item[0])


def follow(
    path: Path,
    *,
    from_start: bool = False,
    poll: float = 0.25,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """Lines appended to `path`, forever (until `stop()`), across rotations.

    Rename rotation: the path names a new file (another inode); the old one is read to its end
    first, then the new one from its start. copytruncate: the file is shorter than what was read;
    it is read again from its start. Partial lines are held until their newline arrives.
    """
    handle: BinaryIO | None = None
    ident = (0, 0)
    pending = b""
    while not stop():
        if handle is None:
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                time.sleep(poll)
                continue
            st = os.fstat(handle.fileno())
            ident = (st.st_dev, st.st_ino)
            if not from_start:
                handle.seek(0, os.SEEK_END)
            from_start = True  # every later file is read whole
        chunk = handle.read(65536)
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            time.sleep(poll)  # renamed away, the new file not made yet
            continue
        if (st.st_dev, st.st_ino) != ident:
            rest = pending + handle.read()  # what was written to the old file after our EOF
            *lines, _torn = rest.split(b"\n")
            for line in lines:
                yield line + b"\n"
            handle.close()
            handle, pending = None, b""
            continue
        if st.st_size < handle.tell():
            handle.seek(0)
            pending = b""
            continue
        time.sleep(poll)
    if handle is not None:
        handle.close()


# --------------------------------------------------------------------------- printing

_COLOURS = {
    "block": "\x1b[1;31m",
    "warn": "\x1b[33m",
    "log": "\x1b[36m",
    "allow": "\x1b[32m",
    "alert": "\x1b[1;35m",
    "dim": "\x1b[2m",
}
_RESET = "\x1b[0m"
_ALERTS = frozenset({"engine_error", "policy_reload_failed", "audit_gap", "domain_mismatch"})
_SKIP = frozenset({"schema_version", "time", "event", "prev", "chain"})


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def format_event(record: Record, *, colour: bool = False) -> str:
    """One readable line: time, what happened, to whom, where, and under which rule."""
    stamp = str(record.get("time", ""))[:19].replace("T", " ") + "Z"
    event = str(record.get("event", "?"))

    def paint(text: str, key: str) -> str:
        return f"{_COLOURS[key]}{text}{_RESET}" if colour else text

    if event == "decision":
        continuing = record.get("phase") == "continue"
        action = "continue" if continuing else str(record.get("action") or record.get("enforced"))
        label = paint(f"{action.upper():<8}", record.get("action") or "dim")
        path = record.get("path") or ""
        where = f"{record.get('host') or '-'}{path if isinstance(path, str) else ''}"
        who = "  ".join(str(record.get(k) or "-") for k in ("agency", "user", "client"))
        cats = ",".join(record.get("categories") or []) or "-"
        if continuing:
            rule = record.get("rule_continued") or "-"
            clauses = ",".join(record.get("clauses_continued") or [])
            tail = f'past {rule} [{clauses}]: "{record.get("work_reason", "")}"'
        else:
            clauses = ",".join(record.get("clauses") or [])
            tail = f"rule {record.get('rule') or '-'} [{clauses}] {record.get('enforced', '')}"
        return f"{stamp} {label} {who}  {cats}  {where}  {tail}".rstrip()
    details = " ".join(
        f"{k}={_short(v)}" for k, v in record.items() if k not in _SKIP and v not in (None, [], "")
    )
    label = paint(f"{event.upper():<8}", "alert" if event in _ALERTS else "dim")
    return f"{stamp} {label} {details}".rstrip()


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    text = str(value)
    return text[:16] if re.fullmatch(r"[0-9a-f]{64}", text) else text


# --------------------------------------------------------------------------- command


def add_review_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `review` on the CLI's subparsers."""
    review: argparse.ArgumentParser = subparsers.add_parser(
        "review", help="read, filter and follow audit logs", description=__doc__.splitlines()[0]
    )
    review.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audit files (.gz ok)")
    review.add_argument(
        "-f", "--follow", action="store_true", help="follow one file as it grows, across rotation"
    )
    review.add_argument("--agency", action="append", default=[], help="agency id (repeatable)")
    review.add_argument(
        "--user", action="append", default=[], help="proxy login name, any case (repeatable)"
    )
    review.add_argument(
        "--client", action="append", default=[], help="client address or network (repeatable)"
    )
    review.add_argument("--category", action="append", default=[], help="category id (repeatable)")
    review.add_argument(
        "--action",
        action="append",
        default=[],
        choices=("allow", "log", "warn", "block"),
        help="action (repeatable)",
    )
    review.add_argument(
        "--host", action="append", default=[], help="host, with its subdomains (repeatable)"
    )
    review.add_argument(
        "--event", action="append", default=[], help="event type, e.g. engine_error (repeatable)"
    )
    review.add_argument("--since", help="from: 2h, 15m, 7d back, or an ISO-8601 time (UTC default)")
    review.add_argument("--until", help="before: as --since")
    review.add_argument("--json", action="store_true", help="print matching lines unchanged")
    review.set_defaults(func=cmd_review)
    return review


def cmd_review(args: argparse.Namespace) -> int:
    try:
        return run_review(args, sys.stdout, now=datetime.now(UTC))
    except ReviewError as exc:
        print(f"aupgate review: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def run_review(
    args: argparse.Namespace,
    out: TextIO,
    *,
    now: datetime,
    stop: Callable[[], bool] = lambda: False,
    poll: float = 0.25,
) -> int:
    """Print the selected events of `args.files` (or follow `args.files[0]`); 0 on success."""
    selection = selection_from(args, now)
    colour = not args.json and use_colour(out)

    def emit(raw: bytes, record: Record) -> None:
        if args.json:
            out.write(raw.decode("utf-8", "replace").rstrip("\n") + "\n")
        else:
            out.write(format_event(record, colour=colour) + "\n")
        out.flush()

    if args.follow:
        if len(args.files) != 1:
            raise ReviewError("-f follows one file")
        lines = follow(args.files[0], from_start=args.since is not None, poll=poll, stop=stop)
        for _key, raw, record in _select(lines, selection):
            emit(raw, record)
        return 0
    try:
        for _key, raw, record in merged(args.files, selection):
            emit(raw, record)
    except (OSError, EOFError) as exc:
        raise ReviewError(str(exc)) from exc
    return 0
