"""Starting, configuring and reporting on the gateway: the parts of the addon that run at
start-up and on option changes, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..audit.log import AuditLog
from ..errors import AupgateError, Problem
from ..gateway import Gateway, Vet
from ..paths import default_categories, default_policy_dir
from . import libraries
from .admin import AdminEdge
from .deciding import Decider
from .directories import proxyauth_problem
from .events import agency_digests, listen_text, report_reload
from .guard import options_error
from .logins import Logins
from .options import parse_fixed_time

__all__ = [
    "cancel",
    "check_default_agency",
    "configure_clock",
    "configure_logins",
    "enforce_options",
    "freeze_heap",
    "load_gateway",
    "open_audit",
    "record_start",
    "record_stop",
    "serve_admin",
    "start_fields",
    "started",
    "stop_on_signals",
    "watch_files",
]

logger = logging.getLogger(__name__)

AuditKey = tuple[str, bool, str]


def open_audit(options: Any, current: AuditKey | None) -> tuple[AuditLog, AuditKey] | None:
    """The audit log the options ask for, or None when it is the one already open."""
    key = (options.aupgate_audit_log, bool(options.aupgate_audit_stdout),
           options.aupgate_on_audit_failure)
    if key == current:
        return None
    try:
        audit = AuditLog.open(
            Path(options.aupgate_audit_log) if options.aupgate_audit_log else None,
            stdout=options.aupgate_audit_stdout, on_failure=options.aupgate_on_audit_failure)
    except OSError as exc:
        raise options_error(f"aupgate: cannot open the audit log: {exc}") from exc
    return audit, key


def load_gateway(options: Any, today: Callable[[], date], audit: AuditLog,
                 fixed_time: datetime | None, vet: Vet | None = None) -> Gateway:
    """Load the policies and categories the options name; a problem stops the start (or the
    option change) with every problem logged."""
    policy_dir = (Path(options.aupgate_policy_dir) if options.aupgate_policy_dir
                  else default_policy_dir())
    categories = (Path(options.aupgate_categories) if options.aupgate_categories
                  else default_categories())
    started = time.perf_counter()
    try:
        gateway = Gateway(policy_dir, categories, today, vet)
    except AupgateError as exc:
        raise options_error(_load_failure(exc, policy_dir, categories)) from exc
    snap = gateway.current
    for warning in snap.policies.warnings:
        logger.warning("aupgate: %s", warning)
    logger.info("aupgate: %d agencies (%s), %d category entries, loaded in %.2fs",
                len(snap.policies.policies), ", ".join(sorted(snap.policies.policies)),
                len(snap.index), time.perf_counter() - started)
    audit.event("policy_loaded", agencies=sorted(snap.policies.policies),
                agency_digests=agency_digests(snap),
                policy_digest=snap.policy_digest,
                categories_digest=snap.categories_digest,
                fixed_time=fixed_time.isoformat() if fixed_time else None)
    return gateway


def _load_failure(exc: AupgateError, policy_dir: Path, categories: Path) -> str:
    """The start-up error, each problem said once: one problem in the message itself; several
    logged one a line (file, line, field), the message counting them."""
    problems: Sequence[Problem] = getattr(exc, "problems", ())
    where = f"aupgate: cannot load policies from {policy_dir} and categories from {categories}"
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    if not problems:
        return f"{where}: {exc}"
    for problem in problems:
        logger.error("aupgate: %s", problem)
    return f"{where}: {len(problems)} problems, listed above"


def check_default_agency(options: Any, gateway: Gateway | None) -> None:
    """`aupgate_default_agency` must name a loaded agency; the gateway is told which it is (a
    reload that drops it is refused unless it is retired)."""
    agency = options.aupgate_default_agency
    if agency and gateway is not None:
        known = gateway.current.policies.policies
        if agency not in known:
            raise options_error(f"aupgate: aupgate_default_agency '{agency}' is not a "
                                f"loaded agency ({', '.join(sorted(known))})")
    if gateway is not None:
        gateway.default_agency = agency or None


def start_fields(options: Any, gateway: Gateway | None,
                 fixed_time: datetime | None) -> dict[str, Any]:
    """The `proxy_start` event's fields: where the gateway listens and what it enforces."""
    fields: dict[str, Any] = {
        "version": __version__, "pid": os.getpid(), "listen": listen_text(),
        "default_agency": options.aupgate_default_agency or None,
        "fixed_time": fixed_time.isoformat() if fixed_time else None,
        "on_audit_failure": options.aupgate_on_audit_failure,
        "libraries": libraries.versions(),
    }
    libraries.warn_if_outdated(fields["libraries"])
    if gateway is not None:
        snap = gateway.current
        fields.update(
            policy_dir=str(gateway.policy_dir), categories=str(gateway.categories),
            policy_digest=snap.policy_digest, categories_digest=snap.categories_digest,
            agencies=sorted(snap.policies.policies),
            agency_digests=agency_digests(snap),
            category_entries=len(snap.index),
            category_counts=snap.index.category_counts())
    return fields


def record_start(audit: AuditLog, options: Any, gateway: Gateway | None,
                 decider: Decider) -> None:
    """The `proxy_start` event: where the gateway listens and what it enforces (and where a
    policy clock set by `aupgate_clock_from` started)."""
    fields = start_fields(options, gateway, decider.fixed_time)
    if decider.clock_from is not None:
        fields["clock_from"] = decider.clock_from.isoformat()
    try:
        audit.event("proxy_start", **fields)
    except Exception:  # an unwritable log is reported by the writer; serving is decided there
        logger.exception("aupgate: could not record proxy_start")


def started(audit: AuditLog, options: Any, gateway: Gateway | None, decider: Decider) -> float:
    """The proxy serves, once: the heap is frozen before the first request (never after a
    reload), `proxy_start` recorded; the monotonic start time, for `proxy_stop`'s uptime."""
    freeze_heap()
    start = time.monotonic()
    record_start(audit, options, gateway, decider)
    return start


def configure_clock(decider: Decider, options: Any, updated: set[str]) -> None:
    """`aupgate_fixed_time` and `aupgate_clock_from` (ValueError if bad, or both are set)."""
    if {"aupgate_fixed_time", "aupgate_clock_from"} & updated:
        decider.set_clock(parse_fixed_time(options.aupgate_fixed_time),
                          parse_fixed_time(options.aupgate_clock_from))


async def cancel(task: asyncio.Task[None] | None) -> asyncio.Task[None] | None:
    """Cancel `task` (if any) and wait until it has ended; None, for the attribute holding it."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return None


def record_stop(audit: AuditLog, reason: str, started: float) -> None:
    """The `proxy_stop` event: which signal (or shutdown) stopped a proxy running since
    `started` (monotonic); a failure is only logged, the proxy is stopping anyway."""
    try:
        audit.event("proxy_stop", pid=os.getpid(), reason=reason,
                    uptime_s=round(time.monotonic() - started, 3))
    except Exception:
        logger.exception("aupgate: could not record proxy_stop")


def configure_logins(logins: Logins, options: Any, updated: set[str],
                     gateway: Gateway | None) -> None:
    """mitmproxy's `proxyauth` (refused with directory policies, and in its LDAP form) and
    `aupgate_login_audit_minutes`; both before the policies load, which checks the first."""
    if "proxyauth" in updated:
        spec = getattr(options, "proxyauth", None)
        problem = proxyauth_problem(spec, gateway.current.policies if gateway else None)
        if problem is not None:
            raise options_error(f"aupgate: {problem}")
        logins.directories.proxyauth = spec
    if "aupgate_login_audit_minutes" in updated:
        minutes = options.aupgate_login_audit_minutes
        if minutes < 0:
            raise options_error("aupgate: aupgate_login_audit_minutes must be zero or more")
        logins.events.set_login_minutes(minutes)


def serve_admin(admin: AdminEdge, options: Any) -> None:
    """Serve (or stop serving) the admin endpoint `aupgate_admin` names; a bad address or a
    port in use stops the start-up with the reason."""
    try:
        admin.configure(options.aupgate_admin, options.listen_host)
    except ValueError as exc:
        raise options_error(f"aupgate: {exc}") from exc
    except OSError as exc:
        raise options_error(f"aupgate: cannot serve the admin endpoint on "
                            f"{options.aupgate_admin}: {exc.strerror or exc}") from exc


def stop_on_signals(loop: asyncio.AbstractEventLoop, master: Any,
                    stopped_by: Callable[[str], None]) -> None:
    """SIGTERM and SIGINT stop the proxy as mitmproxy does, saying first which signal it was.

    mitmdump installs its SIGINT/SIGTERM handlers before `running`; these replace them and do
    the same thing (shut the master down, or ask first where the master prompts).
    """

    def stop(name: str) -> None:
        stopped_by(name)
        getattr(master, "prompt_for_exit", master.shutdown)()

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signal.Signals(signum).name)


def freeze_heap() -> None:
    """Move what start-up loaded out of the cycle collector's sight: call once, before the
    proxy serves its first request (the addon's `running`).

    Start-up leaves tens of thousands of long-lived objects (mitmproxy, the policies, the
    category index's Python side); without this every full collection, which per-request
    allocations trigger, walks them all. Garbage start-up left is collected first, so that none
    of it is frozen.

    Never again after that, in particular not after a reload: `gc.freeze()` freezes every object
    alive at the time, which under traffic includes the requests in flight and whatever garbage
    the collector has not reached yet; frozen objects in reference cycles are never freed. That
    kept about 0.5 MB per reload (issue 12, item 9; `tests/e2e/test_reload_memory.py`). What a
    reload loads is small (the index is memory-mapped, a policy set is a few thousand objects)
    and stays with the collector.
    """
    gc.collect()
    gc.freeze()


async def watch_files(options: Any, gateway: Callable[[], Gateway | None],
                      audit: Callable[[], AuditLog],
                      tick: Callable[[Gateway], Awaitable[None]] | None = None,
                      reloaded: Callable[[], None] | None = None) -> None:
    """Poll policy and category files every `aupgate_reload_seconds`; load changes in a thread
    so traffic keeps flowing, and report each outcome. `tick` runs first on each round (the
    logins close directories the policies in force no longer use); `reloaded` after new
    policies took effect (window boundaries are armed again). Runs until cancelled."""
    while True:
        interval = options.aupgate_reload_seconds
        await asyncio.sleep(interval or 5)
        current = gateway()
        if current is not None and tick is not None:
            await tick(current)
        if not interval or current is None:
            continue
        try:
            parts = current.check()
            if parts:
                outcomes = await asyncio.to_thread(current.reload, parts)
                for outcome in outcomes:
                    report_reload(audit(), current, outcome)
                if reloaded is not None and any(o.ok and o.part == "policies" for o in outcomes):
                    reloaded()
        except Exception as exc:  # the watcher must survive anything
            logger.exception("aupgate: reload check failed")
            audit().event("policy_reload_failed", part="unknown", error=repr(exc))


def enforce_options(o: Any, updated: set[str]) -> None:
    """mitmproxy options a gateway cannot run without, set back (with a warning) if changed."""
    if "connection_strategy" in updated and o.connection_strategy != "lazy":
        # Eager connects upstream at CONNECT, before the SNI is decided: a blocked
        # never-decrypt site would be contacted. Lazy is required, not a preference.
        logger.warning("aupgate: setting connection_strategy=lazy (needed to decide the SNI "
                       "before any upstream connection)")
        o.connection_strategy = "lazy"
    if "validate_inbound_headers" in updated and not o.validate_inbound_headers:
        # h2 then lets CR/LF and NUL through in header values that become HTTP/1 headers
        # (GHSA-847f-9342-265h): request smuggling. docs/security.md.
        logger.warning("aupgate: setting validate_inbound_headers=true (malformed HTTP/2 "
                       "headers must be refused, not forwarded)")
        o.validate_inbound_headers = True
    if "listen_host" in updated and o.listen_host == "":
        logger.warning("aupgate: listening on 127.0.0.1 only; set listen_host to serve "
                       "a network")
        o.listen_host = "127.0.0.1"
