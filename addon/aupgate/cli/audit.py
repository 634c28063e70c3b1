"""`aupgate review`, `report` and `audit verify`: reading the audit trail from the command line.

`review` prints the audit events a question is about (or follows the live file through
logrotate, like `tail -F`); `report` summarises a period as a table, CSV, JSON or an HTML page;
`audit verify` walks the hash chain. The reading itself is in `aupgate.audit`; this module parses
arguments, reads the clock and the terminal, and prints.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aupgate.audit.envelope import format_time
from aupgate.audit.reader import ReviewError, check_audit_file, follow, parse_when
from aupgate.audit.report.html import render_html
from aupgate.audit.report.reading import summarise
from aupgate.audit.report.summary import Options
from aupgate.audit.report.text import render_csv, render_table
from aupgate.audit.review import Record, Selection, format_event, merged, select
from aupgate.audit.verify import verify_files
from aupgate.errors import AupgateError
from aupgate.paths import default_policy_dir
from aupgate.policy.loader import load_policy_dir
from aupgate.policy.model import ACTIONS as LEAST_SEVERE_FIRST

from .common import add_policy_dir_option, now
from .progress import Progress

__all__ = ["add_audit_parsers", "run_report", "run_review", "selection_from"]

FORMATS = ("table", "csv", "json", "html")
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "table": render_table,
    "csv": render_csv,
    "html": render_html,
}


def add_audit_parsers(subparsers: Any) -> None:
    """Register `review`, `report` and `audit` (with `verify`)."""
    _add_review_parser(subparsers)
    _add_report_parser(subparsers)
    _add_verify_parser(subparsers)


# --------------------------------------------------------------------------- review


_REVIEW = (
    "`aupgate review`: the audit log tail an administrator reads, filtered, merged, or followed."
)


def _add_review_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `review` on the CLI's subparsers."""
    review: argparse.ArgumentParser = subparsers.add_parser(
        "review", help="read, filter and follow audit logs", description=_REVIEW
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
        choices=LEAST_SEVERE_FIRST,
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
    review.add_argument(
        "--tz", help="IANA time zone for the times shown (default: each event's agency's zone, "
        "from --policy-dir; UTC when unknown)")
    add_policy_dir_option(review)
    review.set_defaults(func=cmd_review)
    return review


def cmd_review(args: argparse.Namespace) -> int:
    try:
        return run_review(args, sys.stdout, now=now())
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
    fixed_zone = _fixed_zone(args)  # a bad --tz is an error before anything is read
    zones: list[Callable[[Record], tzinfo | None]] = []
    emitted = 0

    def zone_of(record: Record) -> tzinfo | None:
        # The policies are read at the first line shown, not before: `review -f` must be at
        # the file's end at once, and `--json` needs no zone at all.
        if not zones:
            zones.append(_zones(args, fixed_zone))
        return zones[0](record)

    def emit(raw: bytes, record: Record) -> None:
        nonlocal emitted
        emitted += 1
        if args.json:
            out.write(raw.decode("utf-8", "replace").rstrip("\n") + "\n")
        else:
            out.write(format_event(record, colour=colour, zone=zone_of(record)) + "\n")
        out.flush()

    if args.follow:
        if len(args.files) != 1:
            raise ReviewError("-f follows one file")
        lines = follow(args.files[0], from_start=args.since is not None,
                       wait=lambda: time.sleep(poll), stop=stop)
        for _key, raw, record in select(lines, selection):
            emit(raw, record)
        return 0
    for path in args.files:
        check_audit_file(path)
    try:
        for _key, raw, record in merged(args.files, selection):
            emit(raw, record)
    except BrokenPipeError:
        raise  # `| head` has what it wanted: main() ends quietly
    except (OSError, EOFError) as exc:
        raise ReviewError(str(exc)) from exc
    if not emitted and _filtered(args):
        print(f"aupgate review: no event matched {_filters_text(args)} in "
              f"{', '.join(map(str, args.files))}", file=sys.stderr)
        return 1
    return 0


_FILTERS = ("agency", "user", "client", "category", "action", "host", "event", "since", "until")


def _filtered(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) for name in _FILTERS)


def _filters_text(args: argparse.Namespace) -> str:
    """The filters given, as the command line spelt them: what to check for a typo."""
    parts = []
    for name in _FILTERS:
        value = getattr(args, name, None)
        for item in value if isinstance(value, list) else ([value] if value else []):
            parts.append(f"--{name} {item}")
    return " ".join(parts)


def _fixed_zone(args: argparse.Namespace) -> tzinfo | None:
    """The zone --tz names (None without it); ReviewError for a zone that does not exist."""
    if not args.tz:
        return None
    try:
        return ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReviewError(f"--tz: unknown time zone '{args.tz}'") from exc


def _zones(args: argparse.Namespace,
           fixed: tzinfo | None) -> Callable[[Record], tzinfo | None]:
    """Each event's display zone: --tz, else its agency's zone (from the policies), else UTC."""
    if fixed is not None:
        return lambda _record: fixed
    zones: dict[str, tzinfo] = {}
    try:
        policies = load_policy_dir(args.policy_dir or default_policy_dir(), today=now().date())
        zones = {a: p.schedule.timezone for a, p in policies.policies.items()}
    except (AupgateError, OSError):
        pass  # no policies here: times stay in UTC, as the log writes them
    return lambda record: zones.get(str(record.get("agency")))


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


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


# --------------------------------------------------------------------------- report


_REPORT = (
    "`aupgate report`: what happened over a period, as a table, CSV, JSON or a page a director "
    "reads."
)


def _add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report` on the CLI's subparsers."""
    report: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="summarise audit logs over a period", description=_REPORT
    )
    report.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audit files (.gz ok)")
    report.add_argument("--since", help="from: 2h, 7d back, or an ISO-8601 time (UTC default)")
    report.add_argument("--until", help="before: as --since")
    report.add_argument("--format", choices=FORMATS, default="table", help="(default: table)")
    report.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    report.add_argument(
        "--by-user", action="store_true", help="name users (top users overall and per category)"
    )
    report.add_argument(
        "--uncategorized", action="store_true", help="list the most requested uncategorized hosts"
    )
    report.add_argument("--top", type=int, default=10, help="entries per top list (default: 10)")
    report.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes for plain files (default: 1); memory grows with each",
    )
    report.add_argument(
        "--tz", help="IANA time zone for hours and days, e.g. America/Chicago (default: local)"
    )
    report.add_argument(
        "--agency", action="append", default=[], help="only this agency's events (repeatable)"
    )
    report.set_defaults(func=cmd_report)
    return report


def cmd_report(args: argparse.Namespace) -> int:
    try:
        return run_report(args, sys.stdout, sys.stderr, now=now())
    except ReviewError as exc:
        print(f"aupgate report: {exc}", file=sys.stderr)
        return 2


def options_from(args: argparse.Namespace, now: datetime) -> Options:
    zone: tzinfo | None = None
    zone_name = os.environ.get("TZ") or "local time"
    if args.tz:
        try:
            zone = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ReviewError(f"--tz: unknown time zone '{args.tz}'") from exc
        zone_name = args.tz
    if args.top < 1:
        raise ReviewError("--top must be at least 1")
    return Options(
        since=parse_when(args.since, now) if args.since else None,
        until=parse_when(args.until, now) if args.until else None,
        zone=zone,
        zone_name=zone_name,
        by_user=args.by_user,
        uncategorized=args.uncategorized,
        top=args.top,
        agencies=frozenset(args.agency),
    )


def run_report(args: argparse.Namespace, out: TextIO, progress: TextIO, *, now: datetime) -> int:
    """Summarise `args.files` and write the chosen format to `-o` or `out`; 0 on success."""
    options = options_from(args, now)
    for path in args.files:
        check_audit_file(path)
    if args.jobs < 1:
        raise ReviewError("--jobs must be at least 1")
    total = 0
    for path in args.files:
        try:
            total += path.stat().st_size
        except OSError as exc:
            raise ReviewError(f"{path}: {exc.strerror or exc}") from exc
    bar = Progress("reading", total, unit="bytes", stream=progress)
    try:
        summary = summarise(args.files, options, progress=bar.update, jobs=args.jobs)
    finally:
        bar.close()
    if args.agency and not summary.decisions and not summary.access_count:
        raise ReviewError(f"no event of agency {', '.join(args.agency)} in "
                          f"{', '.join(map(str, args.files))} (is the agency id right?)")
    model = summary.to_json([str(p) for p in args.files], now)
    if args.format == "json":
        text = json.dumps(model, indent=2) + "\n"
    else:
        text = RENDERERS[args.format](model)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return 0


# --------------------------------------------------------------------------- audit verify


_VERIFY = (
    "`aupgate audit verify FILE...`: walk the hash chain of audit files; exit 1 at a broken link."
)


def _add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `audit` (with its `verify` subcommand) on the CLI's subparsers."""
    audit: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="audit log integrity tools"
    )
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = sub.add_parser(
        "verify",
        help="check the hash chain of audit files; exit 1 at the first broken or missing link",
        description=_VERIFY,
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
    verify.add_argument(
        "--as-of",
        metavar="WHEN",
        help="judge files still being written as of this time (ISO-8601, or 2h back from now) "
        "instead of now: for copies taken off a gateway",
    )
    verify.add_argument(
        "--partial",
        action="store_true",
        help="the files are part of a longer trail (older files deleted by retention): a file "
        "may continue one not given",
    )
    verify.set_defaults(func=cmd_verify)
    return audit


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        as_of = parse_when(args.as_of, now()) if args.as_of else format_time(now())
    except ReviewError as exc:
        print(f"aupgate audit verify: {exc}", file=sys.stderr)
        return 2
    return verify_files(args.files, anchors=args.anchor, out=sys.stdout, as_of=as_of,
                        partial=args.partial)
