"""`aupgate pac`: write the PAC file (and wpad.dat) for an agency, atomically."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from aupgate.pac import PAC_CONTENT_TYPE, render_pac

from .common import add_policy_dir_option, load_policies, now, unknown_agency

__all__ = ["add_pac_parser"]


def add_pac_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `aupgate pac`."""
    pac = subparsers.add_parser(
        "pac",
        help="write the PAC file (and wpad.dat) that sends browsers to the gateway",
        description=(
            "Write the proxy auto-configuration file for an agency from its policy's pac section. "
            "Serve it as " + PAC_CONTENT_TYPE + " (see docs/deployment.md)."
        ),
    )
    pac.add_argument("--agency", required=True, help="agency id")
    add_policy_dir_option(pac)
    pac.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the PAC file here, atomically (default: standard output)",
    )
    pac.add_argument(
        "--wpad",
        action="store_true",
        help="also write wpad.dat (same content) beside --output, for WPAD discovery",
    )
    pac.set_defaults(func=cmd_pac)


def cmd_pac(args: argparse.Namespace) -> int:
    """Load the policies, render the agency's PAC file, print or write it."""
    if args.wpad and args.output is None:
        print("aupgate pac: --wpad needs --output (wpad.dat is written beside it)", file=sys.stderr)
        return 2
    policies = load_policies(args, now().date(), warnings=False)
    policy = policies.policies.get(args.agency)
    if policy is None:
        print(f"aupgate pac: {unknown_agency(policies, args.agency)}", file=sys.stderr)
        return 2
    try:
        text = render_pac(policy)
    except ValueError as exc:
        print(f"aupgate pac: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if not args.output.parent.is_dir():
        print(f"aupgate pac: {args.output.parent} is not a directory (create it first: the PAC "
              "file goes where your web server serves it)", file=sys.stderr)
        return 2
    targets = [args.output]
    if args.wpad:
        targets.append(args.output.parent / "wpad.dat")
    for target in targets:
        _write_atomically(target, text)
        print(f"wrote {target}", file=sys.stderr)
    return 0


def _write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file and rename, so a web server never serves half a PAC file.

    A browser that fetches a truncated PAC file gets a syntax error and, depending on the
    browser, goes DIRECT (bypassing the gateway) or loses the web; a rename is all or nothing.
    The file is made world-readable: the web server's user serves it.
    """
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        Path(temp).chmod(0o644)
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
