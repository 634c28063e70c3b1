"""Past requests rebuilt from audit lines (docs/audit-log.md), to be decided again.

A `decision` event is a request when its phase is `request` (an HTTP request, or one inside an
intercepted tunnel), `response` (the same request, decided again by a content rule when the
response headers came), `connect` (a CONNECT, decided on its host before any TLS) or `tls` (a
never-decrypted ClientHello, decided on its SNI). Everything else is skipped: a warn
continuation (`continue`: the employee's answer to a page, not a request), a refused client (no
agency: nothing was decided), an event that is not a decision.

The request is rebuilt from what the line says: the URL from scheme, host, port and path (the
path as logged: secret query values read `REDACTED`, which no rule looks at), the agency that
decided, the proxy login, the client address, the method, the content kinds a response rule saw
(or, for an upload, `direction` upload or publish, what its body showed), and the moment: the
line's `time`, or the frozen policy clock when the gateway ran with one (`fixed_time` in
`proxy_start` or `policy_loaded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aupgate.audit.envelope import HEAD, TIME_AT
from aupgate.normalise import url_text

__all__ = ["DECISION_HEAD", "Replayed", "clock_of", "replayed"]

DECISION_HEAD = b'", "event": "decision"'
"""What follows the time in the first bytes of a decision line (checked before parsing)."""
_EVENT_AT = TIME_AT.stop
REPLAYED_PHASES = frozenset({"request", "response", "connect", "tls"})


@dataclass(frozen=True, slots=True)
class Replayed:
    """One past request, as text fields a `RequestDecider` takes, and what was logged for it."""

    phase: str
    agency: str
    url: str
    at: str
    user: str | None
    client: str | None
    content: frozenset[str]  # a response's kinds; an upload's body kinds
    method: str
    upload: bool  # the request sent a body (direction upload or publish)
    logged_action: str | None
    logged_rule: str | None


def is_decision_line(raw: bytes) -> bool | None:
    """True or False for a line with aupgate's envelope; None when it must be parsed to know."""
    if raw.startswith(HEAD):
        return raw[_EVENT_AT:_EVENT_AT + len(DECISION_HEAD)] == DECISION_HEAD
    return None


def clock_of(record: dict[str, Any]) -> str | bool | None:
    """For a `proxy_start` or `policy_loaded` line, the frozen policy clock it announces (None:
    the real clock); False for any other line."""
    if record.get("event") not in ("proxy_start", "policy_loaded"):
        return False
    fixed = record.get("fixed_time")
    return fixed if isinstance(fixed, str) and fixed else None


def replayed(record: dict[str, Any], fixed_time: str | None = None) -> Replayed | None:
    """The request a decision line records, or None when it is not one to replay."""
    if record.get("event") != "decision":
        return None
    phase = record.get("phase")
    agency = record.get("agency")
    host = record.get("host")
    at = fixed_time or record.get("time")
    if phase not in REPLAYED_PHASES or type(agency) is not str or type(host) is not str:
        return None
    if type(at) is not str:
        return None
    if phase in ("connect", "tls"):
        port = record.get("port")
        url = url_text("https", host, port if type(port) is int else None, "/", "")
    else:
        scheme = record.get("scheme")
        path = record.get("path")
        path = path if type(path) is str and path.startswith("/") else "/"
        target, _, query = path.partition("?")
        url = url_text(scheme if type(scheme) is str else "http", host, None, target, query)
    user = record.get("user")
    client = record.get("client")
    method = record.get("method")
    upload = phase == "request" and record.get("direction") in ("upload", "publish")
    content = record.get("content") if phase == "response" or upload else None
    action = record.get("action")
    rule = record.get("rule")
    return Replayed(
        phase=phase,
        agency=agency,
        url=url,
        at=at,
        user=user if type(user) is str else None,
        client=client if type(client) is str and client else None,
        content=frozenset(c for c in content if type(c) is str) if type(content) is list
        else frozenset(),
        method=method if type(method) is str and phase == "request" else "GET",
        upload=upload,
        logged_action=action if type(action) is str else None,
        logged_rule=rule if type(rule) is str else None,
    )
