"""The audit trail: one JSON line per decision, and nothing an auditor must not see.

The audit stream is evidence (who went where, under which clause, and what the gateway did), so
it is separate from operational logging: a structlog logger built once over its own files and
passed to whoever records, never a global structlog configuration that another library could
change. Redaction happens here, at the one place events are written: userinfo never reaches an
event (`Url` drops it), and query values whose names look secret (`password`, `token`, `sig`...)
are replaced, so the trail can be shared with a supervisor without leaking credentials. Cookies
and Authorization headers are never passed in at all.
"""

from __future__ import annotations

import functools
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from .auditchain import SCHEMA_VERSION, format_time
from .auditfile import AuditFile, OnAuditFailure, TextSink

REDACTED = "REDACTED"

_SECRET_NAME = re.compile(
    r"pass|pwd|token|key|secret|sig|code|auth|session|sess|sid|cred|jwt|otp|ticket|nonce|saml",
    re.IGNORECASE,
)
_SECRET_FIELDS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})
_URL_FIELDS = frozenset({"url", "path"})
# Values that are neither mappings nor URLs: most fields of every event (checked by exact type,
# because an abstract `Mapping` isinstance check per field dominated the cost of an event).
_PLAIN = frozenset({str, int, float, bool, type(None), list, tuple})
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")


def redact_query(query: str) -> str:
    """The query with every secret-looking value replaced; names and order are kept."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        if eq and _SECRET_NAME.search(urllib.parse.unquote_plus(name)):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(item)
    return "&".join(parts)


def redact_url(scheme: str, host: str, port: int | None, path: str, query: str) -> str:
    """A URL fit for the audit trail and the block page: no userinfo, no secret values."""
    shown_host = f"[{host}]" if ":" in host else host
    prefix = f"{scheme}://" if scheme else ""
    suffix = f":{port}" if port is not None else ""
    q = redact_query(query)
    return f"{prefix}{shown_host}{suffix}{path}" + (f"?{q}" if q else "")


class _Fanout:
    """A structlog logger that writes each rendered line to every sink and flushes it.

    An audit line that sits in a buffer when the process dies is a lost line; lines are small and
    the flush is one system call.
    """

    def __init__(self, sinks: Iterable[TextSink]) -> None:
        self._sinks = tuple(sinks)

    def msg(self, message: str) -> None:
        line = message + "\n"
        failure: Exception | None = None
        for sink in self._sinks:
            try:
                sink.write(line)
                sink.flush()
            except Exception as exc:  # the other sinks (journald) still get the line
                failure = failure or exc
        if failure is not None:
            raise failure

    info = warning = error = msg


@functools.lru_cache(maxsize=4096)
def _is_secret_field(name: str) -> bool:
    """`Cookie`, `set_cookie`, `Proxy-Authorization`: header names however a caller spells them."""
    return name.lower().replace("_", "-") in _SECRET_FIELDS


def scrub_url(text: str) -> str:
    """A URL or path as given, minus userinfo and with secret-looking query values redacted."""
    text = _USERINFO.sub(r"\1", text)
    base, mark, query = text.partition("?")
    return base + mark + redact_query(query) if mark else text


def _drop_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: a caller passing headers or a raw URL must not leak credentials."""
    for name in list(event):
        value = event[name]
        if type(value) in _PLAIN and name not in _URL_FIELDS and not _is_secret_field(name):
            continue  # the common case, decided without the slower checks below
        if _is_secret_field(name):
            event[name] = REDACTED
        elif name in _URL_FIELDS and isinstance(value, str):
            event[name] = scrub_url(value)
        elif isinstance(value, Mapping):
            event[name] = {k: REDACTED if _is_secret_field(str(k)) else v for k, v in value.items()}
    return event


def _envelope(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`schema_version`, `time`, `event` first, in that order: readable, and cheap to pre-filter.

    The time is UTC with microseconds always present, so lines compare and sort as text.
    """
    head = {
        "schema_version": SCHEMA_VERSION,
        "time": format_time(datetime.now(UTC)),
        "event": event.pop("event", None),
    }
    event.pop("schema_version", None)
    event.pop("time", None)
    return {**head, **event}


class AuditLog:
    """Writes audit events as JSON lines to a file and/or stdout; build one, pass it around."""

    def __init__(self, sinks: Iterable[TextSink], *, owned: Iterable[TextSink] = ()) -> None:
        self._owned = tuple(owned)
        fanout = _Fanout(sinks)
        self._enabled = bool(fanout._sinks)  # no sink: rendering an event would be wasted work
        self._logger = structlog.wrap_logger(
            fanout,
            processors=[
                _drop_secrets,
                _envelope,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
            cache_logger_on_first_use=False,
        )

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
        if self._enabled:
            self._logger.info(event, **fields)

    @property
    def files(self) -> tuple[AuditFile, ...]:
        """The audit files this log writes (for SIGHUP reopen and health checks)."""
        return tuple(h for h in self._owned if isinstance(h, AuditFile))

    @property
    def refusing(self) -> bool:
        """True while an audit file is failing with `on_audit_failure: fail-closed`."""
        return any(f.refusing for f in self.files)

    def close(self) -> None:
        for handle in self._owned:
            close = getattr(handle, "close", None)
            if close is not None:
                close()
        self._owned = ()
