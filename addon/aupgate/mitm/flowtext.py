"""Reading names and URLs off a request, for deciding and for showing.

These helpers turn mitmproxy's request fields into the `Url` the core decides on and the redacted
URL pages show, and pick out the response headers content rules read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mitmproxy import http

from ..audit.redaction import redact_url
from ..memo import remember
from ..normalise import DEFAULT_PORTS, Url, parse_url, url_text

__all__ = ["RequestUrls", "authority_host", "response_headers", "shown_url"]


def authority_host(authority: str) -> str:
    """The host part of a Host header or `:authority` (`[::1]:80` -> `::1`)."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


_WANTED = {b"content-length": "content-length", b"content-type": "content-type",
           b"content-disposition": "content-disposition"}


def response_headers(fields: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """The few response headers content rules read, in one pass, with any `icy-*` headers
    (what `content.is_icy_response` looks for)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in fields:
        name = raw_name.lower()
        key = _WANTED.get(name)
        if key is not None:
            out.setdefault(key, raw_value.decode("latin-1"))
        elif name.startswith(b"icy-"):
            out.setdefault(name.decode("latin-1"), raw_value.decode("latin-1"))
    return out


# A path and query `parse_url` leaves exactly as they are (its own fast-path test for a path of a
# special scheme; a query of printable ASCII without a fragment): `request_url` takes them as
# mitmproxy gives them. tests/test_mitm_flowtext.py holds the two to the same answers.
_CANONICAL_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_CANONICAL_QUERY = re.compile(r"[\x21-\x22\x24-\x7e]*")  # printable ASCII except "#"
_HOSTS_MAX = 4096


class RequestUrls:
    """`parse_url` for a request mitmproxy has already taken apart, without joining and
    re-splitting it: the host is normalised once per distinct spelling (remembered, bounded), and a
    path and query already in canonical form are used as they are. Anything else (an escape, a
    dot segment, a fragment, a non-ASCII byte) goes through `parse_url` itself.

    The host always comes from mitmproxy's `request.host` and `port`, never from the request
    line: see `normalise`'s note on backslashes.
    """

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[str, bool]] = {}

    def url(self, scheme: str, host: str, port: int, path: str, query: str) -> Url:
        known = self._hosts.get(host)
        default = DEFAULT_PORTS.get(scheme)
        if known is None or default is None or not _CANONICAL_PATH.fullmatch(path) or (
                "/." in path) or (query and not _CANONICAL_QUERY.fullmatch(query)):
            url = parse_url(url_text(scheme, host, port, path, query))
            if known is None:
                remember(self._hosts, host, (url.host, url.is_ip), _HOSTS_MAX)
            return url
        return Url(scheme, known[0], None if port == default else port, path, query, known[1])


def shown_url(req: http.Request) -> str:
    """The request's URL as pages and the audit show it: no userinfo, no secret values."""
    port = None if req.port == DEFAULT_PORTS.get(req.scheme) else req.port
    path, _, query = req.path.partition("?")
    return redact_url(req.scheme, req.host, port, path, query)
