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
import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from .auditchain import SCHEMA_VERSION, now_text
from .auditfile import AuditFile, OnAuditFailure, TextSink

REDACTED = "REDACTED"

_SECRET_NAME = re.compile(
    r"pass|pwd|token|key|secret|sig|code|auth|session|sess|sid|cred|jwt|otp|ticket|nonce|saml",
    re.IGNORECASE,
)
_SECRET_FIELDS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})
_URL_FIELDS = frozenset({"url", "path"})
# Fields audit_schema.json defines as scalars or lists of scalars, none of them a URL: they cannot
# carry a header or a URL's secrets, so the redaction pass sets them aside.
_SCALAR_FIELDS = frozenset({
    "schema_version", "time", "event", "prev", "request_id", "phase", "client", "user",
    "agency", "policy_digest", "method", "scheme", "host", "port", "http_version", "sni",
    "connect_host", "device", "network", "error", "categories", "all_categories", "matched",
    "rule", "clauses", "reason", "action", "step", "window", "grant", "intercept", "enforced",
    "status", "bytes", "content", "rule_continued", "clauses_continued", "work_reason",
    "continued_host", "pass_minutes", "names", "actions", "hook", "agencies", "digest",
    "categories_digest", "warnings", "errors", "entries", "part", "version", "pid", "listen",
    "policy_dir", "default_agency", "fixed_time", "on_audit_failure", "uptime_s",
    "category_entries", "lost", "since",
})  # fmt: skip
_DOCUMENTED = _SCALAR_FIELDS | _URL_FIELDS  # every name an event may have without a second look
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
    """The bytes logger at the end of the structlog chain: each rendered line to every sink.

    An `AuditFile` takes the bytes as they are (one `write(2)` per line, on disk in the kernel's
    cache when it returns); text sinks (stdout for journald, a test's StringIO) get the decoded
    line and are flushed, since a line that sits in a buffer when the process dies is lost.
    """

    def __init__(self, sinks: Iterable[TextSink]) -> None:
        self.sinks = tuple(sinks)
        self._targets = tuple((getattr(sink, "write_line", None), sink) for sink in self.sinks)

    def msg(self, message: bytes) -> None:
        failure: Exception | None = None
        for write_line, sink in self._targets:
            try:
                if write_line is not None:
                    write_line(message)
                else:
                    sink.write(message.decode("utf-8", "replace") + "\n")
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
    if "@" in text:
        text = _USERINFO.sub(r"\1", text)
    base, mark, query = text.partition("?")
    return base + mark + redact_query(query) if mark else text


def _prepare(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The audit trail's one processor: spread the fields, drop secrets, stamp the envelope.

    One function rather than three: it runs for every request, and each processor is a call.

    - The event's fields arrive as one dict (`AuditLog` passes them as a single keyword argument:
      passed as keywords, a twenty-field event is unpacked and repacked at each of structlog's
      call layers) and are spread after the envelope, whose keys come first already (every event
      dict starts as a copy of the bound context, which begins with them).
    - Secrets are the last line of defence against a caller passing headers or a raw URL. Only
      fields that can hold one are looked at: `url` and `path` (scrubbed), and every field the
      schema does not define as a scalar or a list of scalars (a header passed by mistake, a
      mapping of headers). The usual event has only documented fields, which one set test shows.
    - `schema_version` and `time` (UTC, microseconds always present, so lines sort as text).
    """
    fields = event.pop(_FIELDS, None)
    if fields:
        name = event["event"]
        event.update(fields)
        event["event"] = name  # the event's name is the one it was recorded under
    if not _DOCUMENTED.issuperset(event):
        for name in event.keys() - _SCALAR_FIELDS:
            value = event[name]
            if _is_secret_field(name):
                event[name] = REDACTED
            elif isinstance(value, Mapping):
                event[name] = {k: REDACTED if _is_secret_field(str(k)) else v
                               for k, v in value.items()}
    for name in _URL_FIELDS:
        value = event.get(name)
        if isinstance(value, str):
            event[name] = scrub_url(value)
    event["schema_version"] = SCHEMA_VERSION
    event["time"] = now_text()
    return event


_FIELDS = "_aupgate_fields"
_COMPACT_HEAD = b'{"schema_version":1,"time":"'
_TIME_END = len(_COMPACT_HEAD) + 27  # YYYY-MM-DDTHH:MM:SS.ffffffZ
_COMPACT_EVENT = b'","event":'
_EVENT_END = _TIME_END + len(_COMPACT_EVENT)
_HEAD = b'{"schema_version": 1, "time": "'
_SPACED_EVENT = b'", "event": '


def render(event: Mapping[str, Any], **_kw: Any) -> bytes:
    """One event as a JSON line (UTF-8 bytes, no newline), by orjson.

    `aupgate review` and `report` recognise our lines by their first bytes,
    `{"schema_version": 1, "time": "`, and read the time at a fixed offset without parsing, so the
    envelope keeps that spelling and the rest is orjson's compact form. A value orjson refuses (a
    lone surrogate from undecodable bytes in a path) falls back to the standard library's encoder,
    which writes the whole line in its own spacing (the envelope included).
    """
    try:
        body = orjson.dumps(event, default=_fallback)
    except TypeError:
        return json.dumps(event, default=_fallback).encode("ascii")
    if body.startswith(_COMPACT_HEAD) and body[_TIME_END:_EVENT_END] == _COMPACT_EVENT:
        return b"".join((_HEAD, body[len(_COMPACT_HEAD) : _TIME_END], _SPACED_EVENT,
                         body[_EVENT_END:]))
    return body  # pragma: no cover - `_prepare` always puts the envelope first


def _fallback(value: Any) -> Any:
    """What the encoders do not know (an address, a set) is written as text, never dropped."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


class AuditLog:
    """Writes audit events as JSON lines to a file and/or stdout; build one, pass it around.

    structlog is the front: a bound logger over `_Fanout` (a bytes logger) whose processors redact
    and stamp the envelope (`_prepare`) and render with orjson (`render`), built once per log,
    never configured globally.
    """

    def __init__(self, sinks: Iterable[TextSink], *, owned: Iterable[TextSink] = ()) -> None:
        self._owned = tuple(owned)
        self._files = tuple(h for h in self._owned if isinstance(h, AuditFile))
        self._may_refuse = any(f.on_failure == "fail-closed" for f in self._files)
        fanout = _Fanout(sinks)
        self._enabled = bool(fanout.sinks)  # no sink: rendering an event would be wasted work
        logger = structlog.wrap_logger(
            fanout,
            processors=[_prepare, structlog.processors.JSONRenderer(render)],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        # The envelope's keys first and in order: every event dict starts as a copy of this
        # context, `_prepare` fills them in place, and the line needs no reordering.
        self._info = logger.bind(schema_version=SCHEMA_VERSION, time="", event="").info

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
            self._info(event, **{_FIELDS: fields})

    def record(self, event: str, fields: dict[str, Any]) -> None:
        """`event` with the fields in a dict the caller built (and gives up): the hot path."""
        if self._enabled:
            self._info(event, **{_FIELDS: fields})

    @property
    def files(self) -> tuple[AuditFile, ...]:
        """The audit files this log writes (for SIGHUP reopen and health checks)."""
        return self._files

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
