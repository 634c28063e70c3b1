"""`aupgate diff --candidate DIR (--replay AUDIT... | --batch FILE)`: what a candidate policy
would change, decided on past traffic.

Every past request (audit decision lines, or request lines as `explain --batch` reads them) is
decided under the policies in force (`--policy-dir`) and under the candidate directory, and the
changes are summarised by agency, action pair, rule pair and category, with the top hosts (and
users, only with `--by-user`).

Exit codes, for gating a change in CI or a change ticket:
  0  no decision changed in the way `--fail-on` names (default: any change of action)
  1  some did (the summary says which)
  2  bad usage, or a file or policy that cannot be read
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from aupgate.lifecycle.diffsum import GATES, DiffSummary
from aupgate.lifecycle.diffwork import (
    DiffState,
    diff_audit_block,
    diff_batch_block,
    fixed_time_after,
)
from aupgate.lifecycle.parallel import default_jobs, file_blocks, ordered_map
from aupgate.lifecycle.requests import RequestDecider
from aupgate.lifecycle.sharedindex import SharedIndex
from aupgate.policy.loader import load_policy_dir

from .common import (
    UsageError,
    add_categories_option,
    add_policy_dir_option,
    load_index_of,
    load_policies,
    parse_time,
)

__all__ = ["add_diff_parser"]


def add_diff_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "diff", help="replay past requests under a candidate policy; exit 1 on changes",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", type=Path, required=True, metavar="DIR",
                        help="directory of candidate policies (*.yaml)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--replay", type=Path, nargs="+", metavar="AUDIT",
                        help="audit files (.jsonl, .gz) whose decisions to replay")
    source.add_argument("--batch", type=Path, metavar="FILE.jsonl",
                        help="request lines as `explain --batch` reads them")
    add_policy_dir_option(parser)
    add_categories_option(parser)
    parser.add_argument("--at", help="with --batch: the moment of lines without `at` "
                                     "(default: now)")
    parser.add_argument("--fail-on", choices=GATES, default="action",
                        help="which changes make the exit code 1: action (default), looser, "
                             "stricter, any (citations too), never")
    parser.add_argument("--by-user", action="store_true",
                        help="name users (and clients) in top lists and --changes")
    parser.add_argument("--top", type=int, default=10, help="entries per top list (default 10)")
    parser.add_argument("--changes", type=Path, metavar="FILE.jsonl",
                        help="also write every changed request, one JSON line each, in order")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: one per core)")
    parser.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1 or args.top < 1:
        raise UsageError("--jobs and --top must be at least 1")
    at = parse_time(args.at)
    files = args.replay or [args.batch]
    for path in files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    current = load_policies(args, at.date(), warnings=False)
    candidate = load_policy_dir(args.candidate, today=at.date())  # PolicyError: exit 1
    index = SharedIndex(load_index_of(args))  # each host looked up once for both
    deciding = RequestDecider(current, index, at)
    state = DiffState(deciding, RequestDecider(candidate, index, at, parsing_of=deciding),
                      by_user=args.by_user, changes=args.changes is not None)
    summary = DiffSummary(by_user=args.by_user)
    changes = args.changes.open("wb") if args.changes is not None else None
    try:
        if args.replay:
            results = ordered_map(partial(diff_audit_block, state), _audit_tasks(files), jobs)
        else:
            results = ordered_map(partial(diff_batch_block, state), _batch_tasks(files[0]), jobs)
        for part, lines in results:
            summary.merge(part)
            if changes is not None:
                changes.write(lines)
    except (OSError, EOFError) as exc:
        raise UsageError(f"cannot read: {exc}") from exc
    finally:
        if changes is not None:
            changes.close()
    model = summary.to_json(args.top, args.fail_on)
    model["candidate"] = str(args.candidate)
    model["files"] = [str(f) for f in files]
    if args.json:
        print(json.dumps(model, indent=2))
    else:
        _print_summary(sys.stdout, model, at.date())
    return 1 if summary.gated(args.fail_on) else 0


def _audit_tasks(files: list[Path]) -> Iterator[tuple[bytes, int, str, str | None]]:
    """Blocks of audit lines, each with the frozen policy clock in force where it starts."""
    fixed: str | None = None
    current: Path | None = None
    for path, (data, first) in file_blocks(files):
        if path != current:
            current, fixed = path, None
        yield data, first, str(path), fixed
        fixed = fixed_time_after(data, fixed)


def _batch_tasks(path: Path) -> Iterator[tuple[bytes, int, str]]:
    for _path, (data, first) in file_blocks([path]):
        yield data, first, str(path)


def _print_summary(out: TextIO, model: dict[str, Any], _today: date) -> None:
    write = out.write
    write(f"aupgate diff: {model['requests']} requests replayed from {model['lines']} lines "
          f"({model['skipped']} other events skipped"
          + (f", {model['unreadable']} unreadable" if model["unreadable"] else "")
          + (f", {model['undecidable']} could not be decided" if model["undecidable"] else "")
          + ")\n")
    write(f"candidate {model['candidate']}: {model['changed']} changed decisions: "
          f"{model['looser']} looser, {model['stricter']} stricter, {model['citation']} "
          "cited differently\n")
    if model["drift"]:
        write(f"note: {model['drift']} logged decisions differ from what the policies in force "
              "decide now (the log was written under other policies)\n")
    write("\nBY AGENCY\n")
    for entry in model["agencies"]:
        write(f"  {entry['agency']:<20} {entry['requests']:>10} requests {entry['changed']:>9} "
              "changed\n")
    if model["actions"]:
        write("\nBY ACTION\n")
        for entry in model["actions"]:
            write(f"  {entry['from']:>5} -> {entry['to']:<5} {entry['count']:>10}\n")
            for item in entry["top_hosts"]["items"]:
                write(f"      {item['count']:>10}  {item['host']}\n")
            for item in entry.get("top_users", {}).get("items", []):
                write(f"      {item['count']:>10}  user {item['user']}\n")
    if model["rules"]:
        write("\nBY RULE\n")
        for entry in model["rules"]:
            write(f"  {entry['agency']}: {entry['from']} -> {entry['to']}  {entry['count']}\n")
    if model["categories"]:
        write("\nBY CATEGORY\n")
        for entry in model["categories"]:
            pairs = ", ".join(f"{a['key']} {a['count']}" for a in entry["actions"])
            write(f"  {entry['category']:<22} {entry['changed']:>9}  ({pairs})\n")
    for problem in model["problems"]:
        write(f"problem: {problem}\n")
    gated = model["gated"]
    write(f"\n{gated} change(s) counted by --fail-on {model['fail_on']}: exit "
          f"{1 if gated else 0}\n")
