"""What every `aupgate` command shares: usage errors, the file options, loading, and `--at`.

The CLI is an edge: it reads the clock (`now`), the environment and the files the core is handed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from aupgate.categories.cache import load_index
from aupgate.categories.index import CategoryIndex
from aupgate.paths import default_categories, default_policy_dir
from aupgate.policy.loader import load_policy_dir
from aupgate.policy.model import PolicySet
from aupgate.policy.schedule import parse_moment

__all__ = [
    "UsageError",
    "add_categories_option",
    "add_policy_dir_option",
    "categories_path",
    "load_index_of",
    "load_policies",
    "now",
    "parse_time",
    "unknown_agency",
]


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def now() -> datetime:
    """The wall clock, in UTC: the time a command decides at when not told otherwise."""
    return datetime.now(UTC)


def add_policy_dir_option(parser: argparse.ArgumentParser) -> None:
    help_text = f"directory of agency policies (default: {default_policy_dir()})"
    parser.add_argument("--policy-dir", type=Path, default=None, help=help_text)


def add_categories_option(parser: argparse.ArgumentParser) -> None:
    help_text = f"category sources file (default: {default_categories()})"
    parser.add_argument("--categories", type=Path, default=None, help=help_text)


def categories_path(args: argparse.Namespace) -> Path:
    """`--categories`, or the default sources.yaml."""
    return Path(args.categories or default_categories())


def load_policies(args: argparse.Namespace, today: date, *, warnings: bool = True) -> PolicySet:
    """The policies of `--policy-dir` (or the default); warnings go to stderr."""
    policies = load_policy_dir(args.policy_dir or default_policy_dir(), today=today)
    if warnings:
        for warning in policies.warnings:
            print(warning, file=sys.stderr)
    return policies


def load_index_of(args: argparse.Namespace) -> CategoryIndex:
    """The category index of `--categories` (or the default)."""
    return load_index(categories_path(args))[0]


def unknown_agency(policies: PolicySet, agency: str) -> str:
    """The one message for an agency id that names no loaded policy."""
    return f"unknown agency '{agency}' (known: {', '.join(sorted(policies.policies))})"


def parse_time(text: str | None) -> datetime:
    """`--at`: ISO-8601, `Z` allowed; naive times are agency-local (the engine's rule)."""
    if text is None:
        return now()
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from exc
