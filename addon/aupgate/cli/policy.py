"""`aupgate check`, `explain` and `clauses`: the questions an administrator asks of the policies.

Each command parses its arguments, calls the core, prints, and returns an exit code (0 fine, 1 a
problem was found, 2 bad usage); `cli.main` dispatches.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from aupgate.categories.cache import load_index
from aupgate.categories.corrections import stale_problems
from aupgate.categories.index import CategoryIndex
from aupgate.categories.overrides import describe_effect
from aupgate.engine import Decision, Facts, decide
from aupgate.errors import PolicyError, Problem, UrlError
from aupgate.identity import identify
from aupgate.lifecycle.batch import BatchState, explain_block
from aupgate.lifecycle.parallel import default_jobs, file_blocks, ordered_map
from aupgate.lifecycle.requests import RequestDecider
from aupgate.normalise import parse_url
from aupgate.paths import default_policy_dir
from aupgate.policy.lint import lint_with_index
from aupgate.policy.loader import load_policy_dir
from aupgate.policy.model import DEVICES, Policy, PolicySet
from aupgate.policy.schedule import parse_moment
from aupgate.yamlsource import load_yaml

from .common import (
    UsageError,
    add_categories_option,
    add_policy_dir_option,
    categories_path,
    load_index_of,
    load_policies,
    now,
    parse_time,
    unknown_agency,
)
from .usergroups import DirectoryLookups, UserGroups, describe, groups_json

__all__ = ["add_policy_parsers", "render_decision", "render_table"]


def add_policy_parsers(sub: Any) -> None:
    """Register `check`, `explain` and `clauses`."""
    check = sub.add_parser(
        "check", help="validate policies and category sources; exit 1 on any policy problem"
    )
    _common(check)
    check.add_argument("--at", help="check grant expiry as of this date or time (default: now)")
    check.add_argument(
        "--verbose",
        action="store_true",
        help="list every rejected category line, not only the counts",
    )
    check.set_defaults(func=cmd_check)

    explain = sub.add_parser("explain", help="the decision for a URL, and why")
    _common(explain)
    explain.add_argument("url", nargs="?", help="URL or host name to decide")
    explain.add_argument("--agency", help="agency id (default: the agency of --client)")
    explain.add_argument("--user", help="proxy login name; with a directory: section, its "
                         "groups are looked up there (the policy's service account)")
    explain.add_argument("--no-directory", action="store_true",
                         help="do not ask the directory for --user's groups")
    explain.add_argument("--client", help="client IP address")
    explain.add_argument("--device", choices=DEVICES, help="device class (default: from --client)")
    explain.add_argument(
        "--at", help="ISO-8601 time, or HH:MM for today; without an offset, agency-local "
        "(default: now)"
    )
    explain.add_argument("--json", action="store_true", help="print one JSON object per decision")
    explain.add_argument(
        "--batch",
        type=Path,
        metavar="FILE.jsonl",
        help="decide one request per JSON line: url, agency, at, device, user, client",
    )
    explain.add_argument(
        "--jobs", type=int, default=None,
        help="with --batch: worker processes (default: one per core); output stays in order",
    )
    explain.set_defaults(func=cmd_explain)

    clauses = sub.add_parser("clauses", help="the clause map of an agency's policy")
    _common(clauses)
    clauses.add_argument("--agency", required=True, help="agency id")
    clauses.add_argument("--json", action="store_true", help="print JSON instead of a table")
    clauses.set_defaults(func=cmd_clauses)


def _common(parser: argparse.ArgumentParser) -> None:
    add_policy_dir_option(parser)
    add_categories_option(parser)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _Loaded:
    policies: PolicySet
    index: CategoryIndex


def _load(args: argparse.Namespace, today: date) -> _Loaded:
    return _Loaded(load_policies(args, today), load_index_of(args))


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    at = parse_time(args.at)
    started = time.perf_counter()
    try:
        policies = load_policy_dir(args.policy_dir or default_policy_dir(), today=at.date())
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem)
        errors = len(exc.errors)
        print(f"{errors} error(s), {len(exc.problems) - errors} warning(s): policies NOT usable")
        return 1
    for warning in policies.warnings:
        print(warning)
    index, report = load_index(categories_path(args))
    elapsed = time.perf_counter() - started
    print(report.summary())
    if args.verbose:
        for problem in report.problems:
            print(problem)
    for agency, policy in sorted(policies.policies.items()):
        unenforced = sum(1 for c in policy.clauses.values() if c.not_enforceable)
        print(
            f"{agency}: {len(policy.rules)} rules, {len(policy.clauses)} clauses "
            f"({unenforced} not enforceable at a proxy), {len(policy.grants)} grants "
            f"[{policy.source}]"
        )
        if policy.directory is not None:  # the password file and keytab are read by the proxy
            sso = " and Kerberos single sign-on" if policy.kerberos is not None else ""
            print(f"  logins: directory {', '.join(policy.directory.urls)}{sso}")
        if policy.overrides is not None:  # the agency's amendments to the shared lists
            for line in describe_effect(policy.overrides, index):
                print(f"  categories: {line}")
    stale = stale_problems(index, "error")  # stale in the load report is a warning; here an error
    if index.corrections:
        first = index.corrections.items[0].file
        print(f"corrections: {len(index.corrections)} from {first}, {len(stale)} stale")
    lint = _lint(policies, index)
    for problem in [*stale, *lint]:
        print(problem)
    print(f"checked in {elapsed:.2f}s: {len(index)} distinct sites and URL prefixes in the index "
          "(fewer than the list entries above: a site on several lists, or listed twice, "
          "is one entry)")
    if stale:
        print(f"{len(stale)} error(s): remove the stale corrections")
        return 1
    warnings = len(policies.warnings) + len(lint)
    if warnings:
        print(f"{warnings} warning(s)")
        return 1
    return 0


def _lint(policies: PolicySet, index: CategoryIndex) -> list[Problem]:
    """The checks that need the category lists: rule entries that never take effect, allow-list
    entries that contradict a block rule (`policy.lint`)."""
    found: list[Problem] = []
    for _agency, policy in sorted(policies.policies.items()):
        top = load_yaml(Path(policy.source))
        if isinstance(top, dict):
            found += lint_with_index(policy, top, index)
    return found


# --------------------------------------------------------------------------- explain


_CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def cmd_explain(args: argparse.Namespace) -> int:
    if (args.url is None) == (args.batch is None):
        raise UsageError("explain needs a URL or --batch FILE.jsonl (not both)")
    today_at = _CLOCK_TIME.match(args.at or "")
    at = now() if today_at else parse_time(args.at)
    loaded = _load(args, at.date())
    if args.batch is not None:
        jobs = args.jobs if args.jobs is not None else default_jobs()
        if jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if args.no_directory or not _asks_a_directory(loaded.policies):
            return _explain_batch(loaded, args.batch, sys.stdout, at, jobs)
    lookups = None if args.no_directory else DirectoryLookups()
    try:
        if args.batch is not None:
            return _explain_batch_with_logins(loaded, args.batch, sys.stdout, at, lookups)
        request = {
            "url": args.url,
            "agency": args.agency,
            "user": args.user,
            "client": args.client,
            "device": args.device,
        }
        for warning in url_warnings(args.url):
            print(f"aupgate explain: warning: {warning}", file=sys.stderr)
        try:
            if today_at:  # HH:MM: that time today, in the agency's own zone
                policy, _, _ = _explain_one(loaded, request, at)
                local_day = policy.schedule.local(at).date()
                at = datetime.combine(local_day, dtime(int(today_at[1]), int(today_at[2])))
            policy, decision, found = _explain_one(loaded, request, at, lookups)
        except (UrlError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
    finally:
        if lookups is not None:
            lookups.close()
    if args.json:
        print(json.dumps({**decision.to_json(), "groups": groups_json(policy, args.user, found)}))
    else:
        print(render_decision(policy, decision, at, describe(policy, args.user, found)))
    if found.problem is not None:
        print(f"aupgate: {found.problem}", file=sys.stderr)
        return 1  # the answer may not be what the gateway decides for that login
    return 0


_SCHEMES = ("http", "https", "ws", "wss")


def url_warnings(raw: str) -> list[str]:
    """Likely typos in a URL given to `explain`: a scheme without "://", a host with no dot."""
    warnings: list[str] = []
    text = raw.strip()
    lowered = text.lower()
    for scheme in _SCHEMES:
        for typo in (f"{scheme}//", f"{scheme}:/", f"{scheme}:\\\\", f"{scheme};//"):
            if lowered.startswith(typo) and not lowered.startswith(f"{scheme}://"):
                fixed = f"{scheme}://" + text[len(typo):].lstrip("/\\")
                warnings.append(f"'{raw}' looks like a mistyped URL; did you mean '{fixed}'?")
                return warnings
    try:
        host = parse_url(text).host
    except UrlError:
        return warnings
    if host in _SCHEMES or host == "www":
        warnings.append(f"the host is '{host}': is '{raw}' the whole address?")
    elif "." not in host and ":" not in host and host != "localhost":
        warnings.append(f"the host '{host}' has no dot: is '{raw}' the whole address?")
    return warnings


def _explain_one(loaded: _Loaded, request: dict[str, Any], at: datetime,
                 lookups: DirectoryLookups | None = None,
                 ) -> tuple[Policy, Decision, UserGroups]:
    """Decide one request given as a dict of the batch fields; raises ValueError/UrlError."""
    unknown = set(request) - {"url", "agency", "user", "client", "device", "at"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if not isinstance(request.get("url"), str):
        raise ValueError("'url' is required and must be text")
    for key, value in request.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"'{key}' must be text")
    client = ipaddress.ip_address(request["client"]) if request.get("client") else None
    device = request.get("device")
    if device is not None and device not in DEVICES:
        raise ValueError(f"unknown device class '{device}' (one of: {', '.join(DEVICES)})")
    agency = request.get("agency")
    policy = identify(loaded.policies, client, agency=agency).policy
    if policy is None:
        if agency:
            raise ValueError(unknown_agency(loaded.policies, agency))
        known = ", ".join(sorted(loaded.policies.policies))
        raise ValueError(
            f"no agency given and the client is in no agency's networks (known: {known})"
        )
    when = at
    if request.get("at"):
        try:
            when = parse_moment(request["at"])
        except ValueError as exc:
            raise ValueError(f"'at': {exc}") from exc
    user = request.get("user")
    found = lookups.groups(policy, user) if user and lookups is not None else UserGroups()
    facts = Facts(url=parse_url(request["url"]), user=found.name or user, client=client,
                  device=device, directory_groups=found.keys)
    return policy, decide(policy, loaded.index, facts, when), found


def _explain_batch(loaded: _Loaded, path: Path, out: TextIO, now: datetime, jobs: int) -> int:
    """One JSON object per line; lines without `at` are decided at `now` (`--at` or the clock).

    Blocks of lines are decided in `jobs` processes and written in order (`lifecycle.batch`).
    """
    state = BatchState(RequestDecider(loaded.policies, loaded.index, now), str(path))
    failures = 0
    write = getattr(out, "buffer", None)
    try:
        blocks = (block for _path, block in file_blocks([path]))  # (data, first line)
        for text, failed in ordered_map(partial(explain_block, state), blocks, jobs):
            failures += failed
            if write is not None:
                write.write(text)
            else:
                out.write(text.decode("utf-8"))
    except (OSError, EOFError) as exc:
        raise UsageError(f"--batch: cannot read {path}: {exc}") from exc
    if write is not None:
        write.flush()
    return 1 if failures else 0


def _asks_a_directory(policies: PolicySet) -> bool:
    """Whether some agency names its users' groups from a directory (`directory:`)."""
    return any(policy.directory is not None for policy in policies.policies.values())


def _explain_batch_with_logins(loaded: _Loaded, path: Path, out: TextIO, now: datetime,
                               lookups: DirectoryLookups | None = None) -> int:
    """`_explain_batch` for policies with a directory: each line's user is looked up in it.

    One process, line by line: directory lookups are network calls with their own cache, which
    the multi-process batch pipeline (`lifecycle.batch`) does not make.
    """
    failures = 0
    for number, line in _numbered_lines(path):
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("each line must be a JSON object")
            policy, decision, found = _explain_one(loaded, request, now, lookups)
            result: dict[str, Any] = {"line": number, **decision.to_json()}
            if request.get("user"):
                result["groups"] = groups_json(policy, request["user"], found)
            if found.problem is not None:
                failures += 1
                result["error"] = f"{path}:{number}: {found.problem}"
        except (ValueError, UrlError) as exc:
            failures += 1
            result = {"line": number, "error": f"{path}:{number}: {exc}"}
        out.write(json.dumps(result) + "\n")
    return 1 if failures else 0


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise UsageError(f"--batch: cannot read {path}: {exc}") from exc


def render_decision(policy: Policy, decision: Decision, at: datetime,
                    groups: list[str] | None = None) -> str:
    """The human answer to "why was this blocked?" (`groups`: the user's groups and where
    each came from, `usergroups.describe`)."""
    local = policy.schedule.local(at)
    zone = policy.schedule.timezone.key
    others = [c for c in decision.all_categories if c not in decision.categories]
    lines = [
        f"{decision.action.upper()}  {decision.url}",
        f"  agency   {policy.agency} ({policy.name})",
        f"  when     {local:%a %Y-%m-%d %H:%M} {zone}: window {decision.window}",
        f"  site     {', '.join(decision.categories) or 'uncategorized'}"
        + (f" (matched {decision.matched})" if decision.matched else "")
        + (f"; also listed as {', '.join(others)}" if others else ""),
        f"  who      user {decision.user or '-'}, device {decision.device or 'unknown'}, "
        f"network {decision.network or '-'}",
        *(groups or ()),
        f"  decided  by {_decided_by(policy, decision)}",
    ]
    for cid in decision.clauses:
        clause = policy.clauses.get(cid)
        if clause is not None:
            body = textwrap.fill(
                clause.text, width=96, initial_indent="           ", subsequent_indent="           "
            )
            lines.append(f"  clause   {policy.document.title} {cid}: {clause.title}\n{body}")
    lines.append(f"  reason   {decision.reason}")
    return "\n".join(lines)


def _decided_by(policy: Policy, decision: Decision) -> str:
    if decision.step in ("rule", "grant"):
        rule = next(r for r in policy.rules if r.id == decision.rule)
        where = f"{policy.source}:{rule.line}" if rule.line else policy.source
        if decision.relaxed:
            passed = ", ".join(f"'{r}' (grant '{g}')" for r, g in decision.relaxed)
            text = (f"rule '{rule.id}' ({where}), the first matching rule that no grant of "
                    f"this user relaxes; grants relaxed only the earlier {passed}")
        else:
            text = f"rule '{rule.id}' ({where}), the first matching rule"
        if decision.step == "grant":
            text += f", relaxed by grant '{decision.grant}'"
        return text
    return {
        "ports": "the agency's port policy (ports)",
        "deny-list": "the agency's deny list",
        "allow-list": "the agency's allow list",
        "default": "the policy default (no rule matched)",
        "budget": f"the personal-use budget '{decision.rule}', spent for today",
    }[decision.step]


# --------------------------------------------------------------------------- clauses


def cmd_clauses(args: argparse.Namespace) -> int:
    policies = load_policies(args, now().date())
    policy = policies.policies.get(args.agency)
    if policy is None:
        raise UsageError(unknown_agency(policies, args.agency))
    rows = [
        {
            "clause": clause.id,
            "title": clause.title,
            "enforced_by": list(policy.enforcing(clause.id)),
            "not_enforceable": clause.not_enforceable,
            "proxy_limits": clause.proxy_limits,
        }
        for clause in policy.clauses.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{policy.name}: {policy.document.title} ({policy.document.date or 'undated'})")
    print(render_table(rows))
    return 0


def render_table(rows: list[dict[str, Any]]) -> str:
    """Clause | title | enforcement, wrapped to a terminal's width."""
    out = [f"{'CLAUSE':<26} {'TITLE':<40} ENFORCEMENT"]
    for row in rows:
        if row["not_enforceable"]:
            how = f"not enforceable at a proxy: {row['not_enforceable']}"
        else:
            how = "enforced by " + ", ".join(row["enforced_by"])
            if row["proxy_limits"]:
                how += f"; limits: {row['proxy_limits']}"
        wrapped = textwrap.wrap(how, width=60, break_on_hyphens=False) or [""]  # keep rule ids
        titles = textwrap.wrap(row["title"], width=40, break_on_hyphens=False) or [""]
        for i in range(max(len(wrapped), len(titles))):
            clause = row["clause"] if i == 0 else ""
            title = titles[i] if i < len(titles) else ""
            how_line = wrapped[i] if i < len(wrapped) else ""
            out.append(f"{clause:<26} {title:<40} {how_line}".rstrip())
    return "\n".join(out)
