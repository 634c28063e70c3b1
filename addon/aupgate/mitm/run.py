"""How `aupgate run` starts the proxy: mitmdump with the addon, so administrators need not know
its options.

The mitmdump started is the one installed next to this Python (mitmproxy's standalone binaries
cannot import aupgate). Every flag maps onto an `aupgate_*` or mitmproxy option, so
`aupgate run` and `mitmdump -s script.py --set ...` behave the same; `--set` passes any other
mitmproxy option through. The process is replaced by mitmdump (exec), so signals and the exit
status are mitmdump's own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("script.py")


def mitmdump_path() -> Path:
    """The mitmdump beside the running interpreter (the same virtual environment)."""
    return Path(sys.executable).with_name("mitmdump")


def mitmdump_argv(args: argparse.Namespace) -> list[str]:
    """The mitmdump command line for parsed `aupgate run` arguments."""
    argv = [str(mitmdump_path()), "-s", str(SCRIPT),
            "--set", f"listen_host={args.listen_host}",
            "--set", f"listen_port={args.listen_port}",
            "--set", "connection_strategy=lazy"]

    def opt(name: str, value: object) -> None:
        argv.extend(["--set", f"{name}={value}"])

    if args.policy_dir is not None:
        opt("aupgate_policy_dir", args.policy_dir.resolve())
    if args.categories is not None:
        opt("aupgate_categories", args.categories.resolve())
    if args.audit_log is not None:
        opt("aupgate_audit_log", args.audit_log.resolve())
    if args.audit_stdout:
        opt("aupgate_audit_stdout", "true")
    if args.default_agency:
        opt("aupgate_default_agency", args.default_agency)
    if args.fixed_time:
        opt("aupgate_fixed_time", args.fixed_time)
    for spec in args.resolve:
        opt("aupgate_resolve", spec)
    for spec in args.sets:
        argv.extend(["--set", spec])
    if args.quiet:
        argv.append("--quiet")
    return argv
