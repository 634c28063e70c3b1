"""`aupgate run`: start the gateway proxy (mitmdump with the addon, see `aupgate.mitm.run`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from aupgate.mitm.run import mitmdump_argv

__all__ = ["add_run_parser"]


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
