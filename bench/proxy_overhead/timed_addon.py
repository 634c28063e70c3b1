"""`run.py --breakdown`: aupgate's addon with its per-request work timed inside the running proxy.

The in-process loop (`hooks.py`) times the hooks warm, one after another; in the proxy the same
code runs between mitmproxy's own work for each request and costs several times as much. This
script is aupgate's addon as `mitmdump -s` loads it, with a clock around each per-request hook,
the audit line's steps (building the fields, redacting and rendering, the file writer's `stat`,
`write` and hash) and the garbage collector, so the breakdown is measured where the cost is paid.

The clocks cost a little themselves, so this proxy's throughput is not aupgate's: `run.py` reports
its timings, never its ratio. Totals go, as JSON, to the file named by AUPGATE_BENCH_TIMINGS,
rewritten every 2,000 responses and when the proxy stops.

With AUPGATE_BENCH_GC_ONLY=1 the script is only the collector's clock and a response count, for
bare mitmdump: what garbage collection costs per request without aupgate, to set beside it.

The wrapping replaces names in aupgate's modules (this process only); the package is unchanged.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aupgate.audit import file as auditfile
from aupgate.audit import log as audit
from aupgate.mitm.addon import Aupgate

_OUT = Path(os.environ.get("AUPGATE_BENCH_TIMINGS", "aupgate-timings.json"))
_EVERY = 2000

# name -> [calls, nanoseconds]
totals: dict[str, list[int]] = {}
responses = 0
_clock = time.perf_counter_ns


def _add(name: str, started: int) -> None:
    entry = totals.get(name)
    if entry is None:
        entry = totals[name] = [0, 0]
    entry[0] += 1
    entry[1] += _clock() - started


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _clock()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(name, started)

    return wrapper


class _TimedOs:
    """`os` for the audit file writer, with its per-line system calls timed."""

    stat = staticmethod(timed("audit file: stat (rotation check)", os.stat))
    write = staticmethod(timed("audit file: write(2)", os.write))

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


class _TimedHashlib:
    sha256 = staticmethod(timed("audit file: sha256 (chain)", hashlib.sha256))

    def __getattr__(self, name: str) -> Any:
        return getattr(hashlib, name)


def _wrap_audit() -> None:
    setattr(auditfile, "os", _TimedOs())  # noqa: B010 - the module's own names, replaced
    setattr(auditfile, "hashlib", _TimedHashlib())  # noqa: B010
    audit.AuditLog.record = timed(  # type: ignore[method-assign]
        "audit: redact + render + file", audit.AuditLog.record)
    auditfile.AuditFile.write_line = timed(  # type: ignore[method-assign]
        "audit file: write_line", auditfile.AuditFile.write_line)


_gc_started = 0


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = _clock()
    else:
        _add(f"gc: generation {info['generation']}", _gc_started)


gc.callbacks.append(_on_gc)


def _count_response() -> None:
    global responses
    responses += 1
    if responses % _EVERY == 0:
        save()


def save() -> None:
    """Write the totals (calls and mean microseconds per call) as JSON."""
    _OUT.write_text(json.dumps({
        "responses": responses,
        "timings": {name: {"calls": calls, "us_per_call": ns / calls / 1000,
                           "us_per_response": ns / responses / 1000 if responses else 0.0}
                    for name, (calls, ns) in sorted(totals.items()) if calls},
    }, indent=2))


class TimedAupgate(Aupgate):
    """aupgate, with a clock around each per-request hook."""

    requestheaders = timed("hook: requestheaders", Aupgate.requestheaders)
    responseheaders = timed("hook: responseheaders", Aupgate.responseheaders)
    _timed_response = timed("hook: response", Aupgate.response)

    def response(self, flow: Any) -> None:
        self._timed_response(flow)
        _count_response()

    async def done(self) -> None:
        save()
        await super().done()


class CountResponses:
    """Bare mitmdump's side: no aupgate, only the response count the collector's clock needs."""

    def response(self, flow: Any) -> None:
        _count_response()

    def done(self) -> None:
        save()


if os.environ.get("AUPGATE_BENCH_GC_ONLY"):
    addons: list[Any] = [CountResponses()]
else:
    _wrap_audit()
    addons = [TimedAupgate()]
