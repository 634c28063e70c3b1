"""Reading names and URLs off a request, for deciding and for showing.

A request names its destination up to three times (the request target or CONNECT host, the Host
header or `:authority`, the TLS SNI) and they need not agree: each is decided and the strictest
decision wins. These helpers turn mitmproxy's request fields into the URL text the core parses
and the redacted URL pages and the audit show.
"""

from __future__ import annotations

from collections.abc import Sequence

from mitmproxy import http

from ..audit import redact_query, redact_url
from ..engine import Decision
from ..errors import AupgateError
from ..normalise import registered_domain

SEVERITY = {"allow": 0, "log": 1, "warn": 2, "block": 3}


def strictest(decisions: Sequence[Decision]) -> Decision:
    """The most severe decision; on a tie the first (the request's own name) wins."""
    best = decisions[0]
    for d in decisions[1:]:
        if SEVERITY[d.action] > SEVERITY[best.action]:
            best = d
    return best


def authority_host(authority: str) -> str:
    """The host part of a Host header or `:authority` (`[::1]:80` -> `::1`)."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


_WANTED = {b"content-length": "content-length", b"content-type": "content-type",
           b"content-disposition": "content-disposition"}


def response_headers(fields: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """The few response headers content rules read, in one pass (`icy` if any icy-* header)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in fields:
        name = raw_name.lower()
        key = _WANTED.get(name)
        if key is not None:
            out.setdefault(key, raw_value.decode("latin-1"))
        elif name.startswith(b"icy-"):
            out["icy"] = "1"
    return out


def url_text(scheme: str, host: str, port: int, path: str, query: str) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    port_text = "" if port == default else f":{port}"
    return f"{scheme}://{shown}{port_text}{path}" + (f"?{query}" if query else "")


def shown_url(req: http.Request) -> str:
    """The request's URL as pages and the audit show it: no userinfo, no secret values."""
    port = None if req.port == {"http": 80, "https": 443}.get(req.scheme) else req.port
    path, _, query = req.path.partition("?")
    return redact_url(req.scheme, req.host, port, path, query)


def safe_path(path: str) -> str:
    base, sep, query = path.partition("?")
    return base + (f"?{redact_query(query)}" if sep else "")


def registered(host: str) -> str:
    try:
        return registered_domain(host)
    except AupgateError:
        return host
