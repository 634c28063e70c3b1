"""`aupgate run`: start mitmdump with the addon, so administrators need not know its options.

The mitmdump started is the one installed next to this Python (mitmproxy's standalone binaries
cannot import aupgate). Every flag maps onto an `aupgate_*` or mitmproxy option, so
`aupgate run` and `mitmdump -s script.py --set ...` behave the same; `--set` passes any other
mitmproxy option through. The process is replaced by mitmdump (exec), so signals and the exit
status are mitmdump's own.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("script.py")


def mitmdump_path() -> Path:
    """The mitmdump beside the running interpreter (the same virtual environment)."""
    return Path(sys.executable).with_name("mitmdump")


def add_run_parser(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="start the gateway proxy (mitmdump with the addon)")
    run.add_argument("--listen-host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1; never wider unless told)")
    run.add_argument("--listen-port", type=int, default=8080, help="port (default: 8080)")
    run.add_argument("--policy-dir", type=Path, help="directory of agency policies")
    run.add_argument("--categories", type=Path, help="category sources file (sources.yaml)")
    run.add_argument("--audit-log", type=Path, help="append audit events (JSON lines) here")
    run.add_argument("--audit-stdout", action="store_true",
                     help="also write audit events to standard output")
    run.add_argument("--default-agency", help="agency for clients in no agency network")
    run.add_argument("--fixed-time", metavar="ISO-8601",
                     help="freeze the policy clock (tests and demos; logged loudly)")
    run.add_argument("--resolve", action="append", default=[], metavar="HOST:PORT:ADDR[:TOPORT]",
                     help="send HOST:PORT to ADDR, like curl --resolve (repeatable)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="OPTION=VALUE",
                     help="any mitmproxy or aupgate option (repeatable)")
    run.add_argument("--quiet", action="store_true", help="do not print each flow")
    run.set_defaults(func=cmd_run)


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


def cmd_run(args: argparse.Namespace) -> int:
    argv = mitmdump_argv(args)
    binary = argv[0]
    if not os.access(binary, os.X_OK):
        print(f"aupgate: {binary} not found: install mitmproxy in this environment "
              "(pip install -e .)", file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(binary, argv)  # noqa: S606 - fixed argv, no shell involved
