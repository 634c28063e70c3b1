"""`aupgate run`: start the gateway proxy (aupgate's own mitmproxy master, see
`aupgate.mitm.run`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aupgate.mitm.run import option_specs, run_gateway

__all__ = ["add_run_parser"]


def add_run_parser(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="start the gateway proxy")
    run.add_argument("--listen-host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1; never wider unless told)")
    run.add_argument("--listen-port", type=int, default=8080, help="port (default: 8080)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="processes serving the port (default: one per core; 1: this process "
                          "alone)")
    run.add_argument("--proxy-protocol-from", action="append", default=[], metavar="CIDR",
                     help="load balancers whose connections start with a PROXY protocol header "
                          "naming the client (repeatable, or comma-separated)")
    run.add_argument("--admin", metavar="[HOST:]PORT",
                     help="serve /metrics (Prometheus) and /healthz here; HOST: 127.0.0.1 unless "
                          "given, a loopback address or the listen address (default: off)")
    run.add_argument("--policy-dir", type=Path, help="directory of agency policies")
    run.add_argument("--categories", type=Path, help="category sources file (sources.yaml)")
    run.add_argument("--audit-log", type=Path,
                     help="append audit events (JSON lines) here; with several workers each "
                          "writes its own file beside it (audit.w0.jsonl, ...)")
    run.add_argument("--audit-stdout", action="store_true",
                     help="also write audit events to standard output")
    run.add_argument("--default-agency", help="agency for clients in no agency network")
    run.add_argument("--fixed-time", metavar="ISO-8601",
                     help="freeze the policy clock (tests and demos; logged loudly)")
    run.add_argument("--resolve", action="append", default=[], metavar="HOST:PORT:ADDR[:TOPORT]",
                     help="send HOST:PORT to ADDR, like curl --resolve (repeatable)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="OPTION=VALUE",
                     help="any mitmproxy or aupgate option (repeatable)")
    run.add_argument("--quiet", action="store_true",
                     help="log only warnings, errors and where the proxy listens")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    return run_gateway(option_specs(args), args.workers, quiet=args.quiet)
