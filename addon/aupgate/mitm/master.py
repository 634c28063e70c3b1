"""`aupgate run`'s own mitmproxy: a `Master` with only what a gateway needs, in this process.

mitmdump builds a `DumpMaster` with about 36 addons, and mitmproxy hands every hook of every
flow to each of them. A gateway needs nine of mitmproxy's (core, block, disable_h2c, proxyauth,
proxyserver, dns_resolver, next_layer, tlsconfig, errorcheck) plus aupgate's; measured on the
project's machine, that master proxies about 1.45 times as many requests per second as mitmdump
with aupgate loaded (docs/benchmarks.md).

What administrators rely on in mitmdump still works:

- every mitmproxy option by `--set` or `confdir/config.yaml`: an option that belongs to one of
  mitmproxy's other default addons (`save_stream_file` to `save`, `upstream_auth`,
  `stream_large_bodies`... ) loads that addon, in mitmdump's order; an option nobody declares is
  an error, as in mitmdump;
- `confdir` and its CA, `--mode upstream:URL`, `proxyauth`, `block_global`...: the same addons;
- start-up errors: an `OptionsError` (a bad option, a broken policy) or an error logged while
  the listeners come up (a busy port) ends the process with status 1, as mitmdump does;
- SIGTERM and SIGINT shut down cleanly (aupgate records `proxy_stop` with the signal's name);
  SIGHUP reopens the audit file and is ignored until the addon is running.

Not kept: mitmdump's flow printing (off unless `flow_detail` is set), its console keys, reading
flows from a file. aupgate's addon takes the place mitmdump's script loader would give it, so
hooks run in mitmdump's order (mitmproxy's proxyauth before it, tlsconfig after it).

Run as a worker of `aupgate run --workers N` (`python -m aupgate.mitm.master --worker I`), it
also serves the supervisor's inherited sockets, writes its own audit file, tells the supervisor
when it is serving, and stops when the supervisor goes away (aupgate.mitm.workers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import addons as mitm_addons
from mitmproxy import exceptions, hooks, optmanager
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    dns_resolver,
    dumper,
    errorcheck,
    next_layer,
    proxyauth,
    proxyserver,
    script,
    tlsconfig,
)
from mitmproxy.master import Master
from mitmproxy.options import Options

from .addon import Aupgate
from .listener import InheritedSockets, Listener
from .oplog import OperationalLog
from .sharedpasses import SharedPasses
from .workers import SupervisorLink, notify_systemd, worker_audit_path

logger = logging.getLogger(__name__)

GATEWAY_ADDONS: tuple[type, ...] = (
    core.Core, block.Block, disable_h2c.DisableH2C, proxyauth.ProxyAuth,
    proxyserver.Proxyserver, dns_resolver.DnsResolver, next_layer.NextLayer,
    tlsconfig.TlsConfig,
)
"""mitmproxy's addons every gateway runs (errorcheck comes last, as in mitmdump)."""

QUIET_LOGGERS = ("tornado", "asyncio", "hpack", "quic")  # as mitmproxy's own main does


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How this process runs: alone, or as worker `worker` of a supervisor."""

    quiet: bool = False
    worker: int | None = None


class StartupError(Exception):
    """The gateway cannot start with these options; the message says why (exit status 1)."""


class OptionRecorder:
    """A stand-in `Loader` that only notes which options an addon declares."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def add_option(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.names.add(name)

    def add_command(self, *args: Any, **kwargs: Any) -> None:
        """Commands are collected when an addon is really loaded."""


def _rank_table() -> dict[type, float]:
    """Each addon type's place in mitmdump's chain; aupgate's own addons placed among them."""
    defaults: list[Any] = mitm_addons.default_addons()  # type: ignore[no-untyped-call]
    order = [type(a) for a in defaults] + [dumper.Dumper, errorcheck.ErrorCheck]
    ranks: dict[type, float] = {kind: float(i) for i, kind in enumerate(order)}
    ranks[OperationalLog] = -1.0
    ranks[Listener] = ranks[proxyserver.Proxyserver] + 0.5
    ranks[Aupgate] = ranks[script.ScriptLoader] - 0.5  # where mitmdump loads `-s` scripts
    return ranks


class GatewayMaster(Master):
    """The lean master. Built by `build_master`; `run()` is mitmproxy's own."""

    def __init__(self, opts: Options, link: SupervisorLink | None = None) -> None:
        super().__init__(opts, with_termlog=False)
        self.link = link
        self._ranks = _rank_table()

    def insert(self, addon: Any) -> None:
        """Register an addon and put it in the chain at its place in mitmdump's order."""
        self.addons.register(addon)  # type: ignore[no-untyped-call]
        rank = self._ranks[type(addon)]
        chain: list[Any] = self.addons.chain
        at = next((i for i, a in enumerate(chain) if self._ranks.get(type(a), 1e9) > rank),
                  len(chain))
        chain.insert(at, addon)

    async def running(self) -> None:
        await super().running()
        if self.link is None:
            notify_systemd("READY=1")
            return
        self.link.ready()
        self.link.watch(asyncio.get_running_loop(), self._supervisor_gone)

    def _supervisor_gone(self) -> None:
        logger.warning("aupgate: the supervisor has gone away; stopping")
        self.shutdown()  # type: ignore[no-untyped-call]


def _wants_flow_dump(deferred: dict[str, Any]) -> bool:
    """Whether `flow_detail` was set above 0 (then mitmproxy's dumper prints flows)."""
    if "flow_detail" not in deferred:
        return False
    value = deferred["flow_detail"]
    raw = getattr(value, "val", value)  # `--set` values wait as strings until declared
    if isinstance(raw, list):
        raw = raw[-1] if raw else ""
    try:
        return int(raw) > 0
    except (TypeError, ValueError):
        return True  # the dumper's own option parsing reports the bad value


def build_master(specs: Sequence[str], settings: RunSettings,
                 link: SupervisorLink | None = None,
                 inherited: InheritedSockets | None = None) -> GatewayMaster:
    """The master with its addons, every option set; raises StartupError for bad options.

    Must run inside the event loop (mitmproxy's master takes the running loop).
    """
    opts = Options()
    master = GatewayMaster(opts, link)
    oplog = OperationalLog(worker=settings.worker, quiet=settings.quiet)
    check = errorcheck.ErrorCheck()
    defaults: list[Any] = mitm_addons.default_addons()  # type: ignore[no-untyped-call]
    fixed = [a for a in defaults if isinstance(a, GATEWAY_ADDONS)]
    try:
        master.addons.add(oplog, *fixed)  # type: ignore[no-untyped-call]
        master.insert(Listener(inherited))
        master.addons.add(check)  # type: ignore[no-untyped-call]
        opts.set(*specs, defer=True)
        optmanager.load_paths(opts, Path(opts.confdir).expanduser() / "config.yaml",
                              Path(opts.confdir).expanduser() / "config.yml")
        late = _optional_addons(master, defaults, fixed)
        aupgate = Aupgate()
        master.insert(aupgate)  # its deferred aupgate_* options are applied now
        if settings.worker is not None and opts.aupgate_audit_log:
            opts.update(  # type: ignore[no-untyped-call]
                aupgate_audit_log=worker_audit_path(opts.aupgate_audit_log, settings.worker))
        if link is not None:
            _share_passes(aupgate, link)
        for addon in [*late, aupgate]:
            # Registered after the options were set: configure once with all of them, as
            # mitmproxy's script loader does for a script.
            everything: set[str] = opts.keys()  # type: ignore[no-untyped-call]
            master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(everything))
    except exceptions.OptionsError as exc:
        raise StartupError(str(exc)) from exc
    if opts.deferred:
        raise StartupError(f"unknown option(s): {', '.join(sorted(opts.deferred))} (neither "
                           "mitmproxy's nor aupgate's; `aupgate run --help`, `mitmdump "
                           "--options`)")
    return master


def _share_passes(aupgate: Aupgate, link: SupervisorLink) -> None:
    """A worker's warn tickets and passes go to the other workers of the box and back."""
    shared = SharedPasses(aupgate.warn.passes.pass_seconds, link.publish)
    aupgate.warn.passes = shared
    link.on_event = lambda event: shared.apply(event, time.monotonic())


def _optional_addons(master: GatewayMaster, defaults: list[Any],
                     fixed: list[Any]) -> list[Any]:
    """mitmproxy's other addons whose options were set, inserted in mitmdump's order."""
    deferred = master.options.deferred
    candidates = [a for a in defaults if a not in fixed]
    if _wants_flow_dump(deferred):
        candidates.append(dumper.Dumper())
    else:
        deferred.pop("flow_detail", None)  # 0 is what aupgate run does anyway
    wanted = set(deferred)
    late = []
    for addon in candidates:
        recorder = OptionRecorder()
        if hasattr(addon, "load"):
            addon.load(recorder)
        if recorder.names & wanted:
            late.append(addon)
    for addon in late:
        master.insert(addon)
    return late


async def serve(specs: Sequence[str], settings: RunSettings) -> int:
    """Build the master and run it until SIGTERM/SIGINT; the process's exit status."""
    # Loading policies takes a moment: a SIGHUP meanwhile (logrotate, the supervisor passing
    # one on) must not end the process. aupgate's addon takes SIGHUP over once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A file-size limit (`ulimit -f`, LimitFSIZE=) must fail a write with EFBIG, which the audit
    # writer handles as on_audit_failure says, not kill the gateway with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    link = SupervisorLink.from_env(os.environ)
    inherited = InheritedSockets.from_env(os.environ)
    try:
        master = build_master(specs, settings, link, inherited)
    except StartupError as exc:
        print(f"aupgate: {exc}" if not str(exc).startswith("aupgate") else str(exc),
              file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, master.shutdown)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await master.run()
    return 0


def run(specs: Sequence[str], settings: RunSettings) -> int:
    """`aupgate run` in this process (one worker, or the only process)."""
    return asyncio.run(serve(specs, settings))


def main(argv: Sequence[str] | None = None) -> int:
    """A worker of `aupgate run --workers N`: `python -m aupgate.mitm.master --worker I -- SPEC`."""
    parser = argparse.ArgumentParser(prog="aupgate-worker")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("specs", nargs="*", metavar="OPTION=VALUE")
    args = parser.parse_args(argv)
    return run(args.specs, RunSettings(quiet=args.quiet, worker=args.worker))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
