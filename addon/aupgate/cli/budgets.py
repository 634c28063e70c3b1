"""`aupgate budgets show|reset`: the personal-use budgets as the gateway counts them.

`show` lists each subject's use of each budget on a day (today in each agency's time zone by
default) against the policy's limit; `reset` forgets a day's use (an approved exception, a
counting mistake), records who did it and why, and the running gateways pick it up at their next
flush. Subjects are named (`user:NAME`, `client:ADDRESS`): reading budgets is reading who used
what, and is for the same people who read the audit log.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from aupgate.budgets import subject_of
from aupgate.budgetstore import BudgetStore, Usage, default_budget_db
from aupgate.policy.model import Policy, PolicySet

from .common import UsageError, add_policy_dir_option, load_policies, now, unknown_agency

__all__ = ["add_budgets_parser"]


def add_budgets_parser(sub: Any) -> None:
    parser = sub.add_parser("budgets", help="show or reset personal-use budgets",
                            description=__doc__)
    commands = parser.add_subparsers(dest="budgets_command", required=True, metavar="SUBCOMMAND")
    show = commands.add_parser("show", help="each subject's use today against the limits")
    _common(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)
    reset = commands.add_parser("reset", help="forget a day's use (recorded with who and why)")
    _common(reset)
    reset.add_argument("--budget", help="only this budget (default: all of the agency's)")
    reset.add_argument("--all", action="store_true",
                       help="every subject of the agency (instead of --user or --client)")
    reset.add_argument("--by", default=None, help="who resets (default: the login name)")
    reset.add_argument("--reason", required=True, help="why (recorded)")
    reset.set_defaults(func=cmd_reset)


def _common(parser: argparse.ArgumentParser) -> None:
    add_policy_dir_option(parser)
    parser.add_argument("--db", type=Path, default=None,
                        help=f"budget database (default: {default_budget_db()})")
    parser.add_argument("--agency", help="agency id (reset: required)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", help="proxy login name")
    who.add_argument("--client", help="client address (for requests without a login)")
    parser.add_argument("--day", help="YYYY-MM-DD (default: today in the agency's time zone)")


def _store(args: argparse.Namespace) -> BudgetStore:
    path = args.db or default_budget_db()
    if not path.is_file():
        raise UsageError(f"{path}: no budget database (the gateway makes it once a policy has "
                         "budgets)")
    return BudgetStore(path)


def _subject(args: argparse.Namespace) -> str | None:
    if args.user:
        return subject_of(args.user, "")
    if args.client:
        return subject_of(None, args.client)
    return None


def _today(policy: Policy) -> str:
    return policy.schedule.local(now()).date().isoformat()


def _limits(policies: PolicySet) -> dict[tuple[str, str], tuple[int, str]]:
    return {(agency, b.id): (b.limit, b.unit)
            for agency, policy in policies.policies.items() for b in policy.budgets}


def cmd_show(args: argparse.Namespace) -> int:
    policies = load_policies(args, now().date(), warnings=False)
    if args.agency and args.agency not in policies.policies:
        raise UsageError(unknown_agency(policies, args.agency))
    store = _store(args)
    chosen = [args.agency] if args.agency else sorted(policies.policies)
    limits = _limits(policies)
    rows: list[dict[str, Any]] = []
    try:
        for agency in chosen:
            day = args.day or _today(policies.policies[agency])
            for usage in store.usage(day, agency, _subject(args), day):
                rows.append(_row(usage, limits.get((usage.agency, usage.budget))))
        resets = [r for agency in chosen
                  for r in store.resets(args.day or _today(policies.policies[agency]), agency)]
    finally:
        store.close()
    if args.json:
        print(json.dumps({"usage": rows, "resets": [_reset_json(r) for r in resets]}, indent=2))
        return 0
    print(f"{'AGENCY':<12} {'BUDGET':<22} {'DAY':<10} {'SUBJECT':<28} {'USED':>9} "
          f"{'LIMIT':>9}  STATE")
    for row in rows:
        print(f"{row['agency']:<12} {row['budget']:<22} {row['day']:<10} {row['subject']:<28} "
              f"{row['used_text']:>9} {row['limit_text']:>9}  {row['state']}")
    if not rows:
        print("(no use recorded)")
    for reset in resets:
        print(f"reset {reset.at} by {reset.by}: {reset.agency} {reset.budget or 'all budgets'} "
              f"{reset.subject or 'everyone'} {reset.day} ({reset.minutes} minutes, "
              f"{reset.bytes} bytes): {reset.reason}")
    return 0


def _row(usage: Usage, limit: tuple[int, str] | None) -> dict[str, Any]:
    unit = limit[1] if limit else "minutes"
    used = usage.minutes if unit == "minutes" else usage.bytes
    state = "no longer in the policy"
    if limit is not None:
        state = "spent" if used >= limit[0] else "within budget"
    return {
        "agency": usage.agency, "budget": usage.budget, "day": usage.day,
        "subject": usage.subject, "minutes": usage.minutes, "bytes": usage.bytes,
        "unit": unit, "used": used, "limit": limit[0] if limit else None, "state": state,
        "used_text": _amount(used, unit), "limit_text": _amount(limit[0], unit) if limit else "-",
    }


def _amount(value: int, unit: str) -> str:
    return f"{value} min" if unit == "minutes" else f"{value / 1048576:.1f} MB"


def _reset_json(reset: Any) -> dict[str, Any]:
    return {name: getattr(reset, name) for name in reset.__slots__}


def cmd_reset(args: argparse.Namespace) -> int:
    if not args.agency:
        raise UsageError("reset needs --agency")
    subject = _subject(args)
    if subject is None and not args.all:
        raise UsageError("reset needs --user, --client or --all")
    policies = load_policies(args, now().date(), warnings=False)
    policy = policies.policies.get(args.agency)
    if policy is None:
        raise UsageError(unknown_agency(policies, args.agency))
    if args.budget and args.budget not in {b.id for b in policy.budgets}:
        known = ", ".join(b.id for b in policy.budgets) or "none"
        raise UsageError(f"agency '{args.agency}' has no budget '{args.budget}' (known: {known})")
    day = args.day or _today(policy)
    by = args.by or getpass.getuser()
    store = _store(args)
    try:
        forgotten = store.reset(now().isoformat(timespec="seconds"), args.agency, day, by=by,
                                reason=args.reason, budget=args.budget, subject=subject)
    finally:
        store.close()
    for usage in forgotten:
        print(f"reset {usage.agency} {usage.budget} {usage.subject} {usage.day}: "
              f"{usage.minutes} minutes, {usage.bytes} bytes forgotten")
    if not forgotten:
        print(f"nothing to reset for {subject or 'anyone'} in {args.agency} on {day}",
              file=sys.stderr)
        return 1
    print("running gateways see the reset at their next flush (about a second)")
    return 0
