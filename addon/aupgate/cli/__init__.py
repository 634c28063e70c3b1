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
import sys
from collections.abc import Sequence

from aupgate.errors import CategoryError, PolicyError

from .audit import add_audit_parsers
from .categories import add_categories_parser
from .common import UsageError
from .pac import add_pac_parser
from .policy import add_policy_parsers
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
    except BrokenPipeError:  # `aupgate explain ... | head`
        return 0
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aupgate",
        description=(
            "`aupgate`: check policies, explain decisions, print clause maps, run the proxy."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_policy_parsers(sub)
    for register in (
        add_run_parser,
        add_pac_parser,
        add_audit_parsers,
        add_categories_parser,
    ):
        register(sub)
    return parser
