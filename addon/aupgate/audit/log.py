"""`AuditLog`: what everything that records an event writes through, built once and passed around.

The audit stream is evidence (who went where, under which clause, and what the gateway did), so
it is kept apart from operational logging: an object built over its own sinks and handed to
whoever records, never a global logging configuration another library could change. Each event
is redacted (`redaction`), stamped and rendered (`envelope`) and handed to every sink: the audit
file (`file.AuditFile`), standard output for journald, or a test's StringIO.

Reads the clock: an event's time is when it was recorded (`now_text`). This and `file.py` are
the only modules outside the edges (`cli/`, `mitm/`) that do; tests/test_architecture.py holds
the list.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .bounds import bound_fields, fits
from .envelope import render
from .file import AuditFile, OnAuditFailure, TextSink
from .redaction import redact_fields

__all__ = ["AuditLog", "now_text"]

_second: tuple[int, str] = (-1, "")  # the last second formatted, swapped as one reference


def now_text() -> str:
    """The current time as `envelope.format_time` writes it, each second formatted only once."""
    global _second
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{nanos // 1000:06d}Z"


class _Fanout:
    """Each rendered line to every sink.

    An `AuditFile` takes the bytes as they are (one `write(2)` per line, on disk in the kernel's
    cache when it returns); text sinks (stdout for journald, a test's StringIO) get the decoded
    line and are flushed, since a line that sits in a buffer when the process dies is lost.
    """

    def __init__(self, sinks: Iterable[TextSink]) -> None:
        self.sinks = tuple(sinks)
        self._targets = tuple((getattr(sink, "write_line", None), sink) for sink in self.sinks)

    def write(self, line: bytes) -> None:
        failure: Exception | None = None
        for write_line, sink in self._targets:
            try:
                if write_line is not None:
                    write_line(line)
                else:
                    sink.write(line.decode("utf-8", "replace") + "\n")
                    sink.flush()
            except Exception as exc:  # the other sinks (journald) still get the line
                failure = failure or exc
        if failure is not None:
            raise failure


class AuditLog:
    """Writes audit events as JSON lines to a file and/or stdout; build one, pass it around."""

    def __init__(self, sinks: Iterable[TextSink], *, owned: Iterable[TextSink] = ()) -> None:
        self._owned = tuple(owned)
        self._files = tuple(h for h in self._owned if isinstance(h, AuditFile))
        self._may_refuse = any(f.on_failure == "fail-closed" for f in self._files)
        self._fanout = _Fanout(sinks)
        self._enabled = bool(self._fanout.sinks)  # no sink: rendering an event would be wasted
        # sees every event recorded, before it is rendered (the proxy's metrics count them)
        self.observer: Callable[[str, dict[str, Any]], None] | None = None

    @classmethod
    def open(
        cls, path: Path | None, *, stdout: bool = False, on_failure: OnAuditFailure = "serve"
    ) -> AuditLog:
        """Append to `path` (made if missing; see `AuditFile`) and/or write to stdout."""
        sinks: list[TextSink] = []
        owned: list[AuditFile] = []
        if path is not None:
            handle = AuditFile(path, on_failure=on_failure)  # closed by close()
            sinks.append(handle)
            owned.append(handle)
        if stdout:
            sinks.append(sys.stdout)
        return cls(sinks, owned=owned)

    def event(self, event: str, **fields: Any) -> None:
        """Record one event; `event` names it (`decision`, `engine_error`, ...).

        Raises `AuditUnavailableError` when a file cannot be written and its `on_failure` is
        `fail-closed`.
        """
        self.record(event, fields)

    def record(self, event: str, fields: dict[str, Any]) -> None:
        """`event` with the fields in a dict the caller built (and gives up): the hot path."""
        if self.observer is not None:
            try:
                self.observer(event, fields)
            except Exception:  # counting must never cost an audit line
                logging.getLogger(__name__).exception("aupgate: an audit observer failed")
        if self._enabled:
            redact_fields(fields)
            now = now_text()
            line = render(now, event, fields)
            if not fits(line):  # a field may be over its bound: cut, and render again
                bound_fields(fields)
                line = render(now, event, fields)
            self._fanout.write(line)

    @property
    def files(self) -> tuple[AuditFile, ...]:
        """The audit files this log writes (for SIGHUP reopen and health checks)."""
        return self._files

    def reopen(self) -> None:
        """Each audit file moves to what its path names now (SIGHUP, after logrotate)."""
        for handle in self._files:
            handle.reopen()

    @property
    def fail_closed(self) -> bool:
        """True when an audit file is `fail-closed`: decisions are recorded before forwarding."""
        return self._may_refuse

    @property
    def refusing(self) -> bool:
        """True while an audit file is failing with `on_audit_failure: fail-closed`."""
        return self._may_refuse and any(f.refusing for f in self._files)

    def close(self) -> None:
        for handle in self._owned:
            close = getattr(handle, "close", None)
            if close is not None:
                close()
        self._owned = ()
        self._files = ()
