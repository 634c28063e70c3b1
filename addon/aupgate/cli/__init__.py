"""`aupgate`: check policies, explain decisions, print clause maps, manage categories, read the
audit trail, write PAC files, run the proxy.

One module per command family registers its subcommands here: `policy` (check, explain,
clauses), `categories`, `audit` (review, report, audit verify), `pac` and `run`. Every command
parses its arguments, calls the core, prints and returns an exit code, so tests call
`main([...])` directly. Exit codes: 0 fine, 1 a problem was found, 2 bad usage.

The CLI is an edge, with `mitm/`: it reads the clock and the environment; nothing in the core
imports it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from aupgate import __version__
from aupgate.errors import CategoryError, PolicyError

from .audit import add_audit_parsers
from .budgets import add_budgets_parser
from .ca import add_ca_parser
from .categories import add_categories_parser
from .common import UsageError
from .diff import add_diff_parser
from .pac import add_pac_parser
from .policy import add_policy_parsers
from .policytest import add_test_parser
from .run import add_run_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"aupgate: {exc}", file=sys.stderr)
        return 2
    except (PolicyError, CategoryError) as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except BrokenPipeError:  # `aupgate review ... | head`: the reader has all it wanted
        _quiet_stdout()
        return 0
    return code


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush at exit does not
    fail again and print "Broken pipe" after the reader has gone."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def version_text() -> str:
    """`aupgate --version`: this package's version, and the mitmproxy it runs on."""
    try:
        mitmproxy = importlib.metadata.version("mitmproxy")
    except importlib.metadata.PackageNotFoundError:
        mitmproxy = "not installed"
    return f"aupgate {__version__} (mitmproxy {mitmproxy}, Python {sys.version.split()[0]})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aupgate",
        description=(
            "`aupgate`: check policies, explain decisions, print clause maps, run the proxy."
        ),
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_policy_parsers(sub)
    for register in (
        add_test_parser,
        add_diff_parser,
        add_run_parser,
        add_pac_parser,
        add_audit_parsers,
        add_categories_parser,
        add_ca_parser,
        add_budgets_parser,
    ):
        register(sub)
    return parser
