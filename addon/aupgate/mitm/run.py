"""How `aupgate run` starts the proxy, so administrators need not know mitmproxy's options.

It runs aupgate's own mitmproxy master in this process (`aupgate.mitm.master`: only the addons a
gateway needs), or, with `--workers N` above 1 (the default is one per core), a supervisor and N
such processes sharing one listening socket (`aupgate.mitm.workers`). Every flag maps onto an
`aupgate_*` or mitmproxy option, so `aupgate run` and `mitmdump -s script.py --set ...` decide
the same; `--set` passes any other mitmproxy option through.

mitmproxy itself is imported only when the proxy starts: the other subcommands need neither it
nor the addon.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def option_specs(args: argparse.Namespace) -> list[str]:
    """The `OPTION=VALUE` settings for parsed `aupgate run` arguments (`--set` ones last)."""
    specs = [f"listen_host={args.listen_host}", f"listen_port={args.listen_port}",
             "connection_strategy=lazy"]

    def opt(name: str, value: object) -> None:
        specs.append(f"{name}={value}")

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
    if args.admin:
        opt("aupgate_admin", args.admin)
    for spec in args.proxy_protocol_from:
        opt("aupgate_proxy_protocol_from", spec)
    specs.extend(args.sets)
    return specs


def run_gateway(specs: Sequence[str], workers: int | None, *, quiet: bool) -> int:
    """Serve until stopped: this process alone (`workers` 1), or a supervisor and `workers`
    processes (None: one per core). The exit status."""
    from .master import RunSettings, run
    from .workers import default_workers, run_workers

    count = default_workers() if workers is None else workers
    if count < 1:
        print("aupgate: --workers must be 1 or more", file=sys.stderr)
        return 2
    if count == 1:
        return run(specs, RunSettings(quiet=quiet))
    return run_workers(specs, count, quiet=quiet)
