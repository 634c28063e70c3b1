"""Requests the gateway refuses before deciding: oversized heads and malformed targets or headers.

A request head is bounded (as nginx, Apache and Squid bound theirs) so that one client cannot
make the gateway hold, decide and audit megabytes: a request target longer than `MAX_TARGET`
gets 414, a head larger than `MAX_HEAD` bytes or with more than `MAX_FIELDS` header fields 431.
HTTP/1 heads are also cut off while they arrive (`headlimits`), before they are buffered whole;
this check covers every HTTP version once the head is parsed.

Malformed shapes get 400, never a forward: a header value carrying CR, LF or NUL (an obs-fold
continuation line, which RFC 9112 5.2 says a proxy must reject or unfold; or HTTP/2 header bytes
that would become a second HTTP/1 header), and a request target that is not origin-form
(`/path`) or `*` (an absolute URL in HTTP/2's `:path`, RFC 9113 8.3.1).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mitmproxy import http

from ..identity import Identity
from ..pages import page_for, render
from .responses import answer, make_response
from .state import FlowRecord

__all__ = ["MAX_FIELDS", "MAX_HEAD", "MAX_TARGET", "Refusal", "refusal", "refuse"]

MAX_TARGET = 16 * 1024
"""Longest request target (path and query), bytes: twice nginx's and Apache's 8 KiB lines."""
MAX_HEAD = 64 * 1024
"""Largest request head, bytes (Squid's request_header_max_size)."""
MAX_FIELDS = 200
"""Most header fields in one request (Apache's LimitRequestFields is 100)."""


class Refusal(NamedTuple):
    status: int
    reason: str


_BREAK = re.compile(rb"[\r\n\0]")


def refusal(req: http.Request) -> Refusal | None:
    """Why this request must be refused before deciding, or None (the common case).

    Runs for every request, so it looks at the head in a few passes over joined bytes (about
    1.5 us for a browser's head) rather than header by header.
    """
    target = req.data.path
    if len(target) > MAX_TARGET:
        return Refusal(414, f"The request target is longer than {MAX_TARGET // 1024} KiB.")
    if not target.startswith(b"/") and target != b"*":
        return Refusal(400, "The request target is not a path on the named host.")
    fields = req.data.headers.fields
    if len(fields) > MAX_FIELDS:
        return Refusal(431, f"The request has more than {MAX_FIELDS} header fields.")
    values = b"".join([value for _, value in fields])
    if _BREAK.search(values):
        return Refusal(400, "A request header is folded over several lines or carries "
                            "line breaks.")
    size = len(target) + len(values) + sum([len(name) + 4 for name, _ in fields])
    if size > MAX_HEAD:
        return Refusal(431, f"The request head is larger than {MAX_HEAD // 1024} KiB.")
    return None


def refuse(flow: http.HTTPFlow, ident: Identity, refused: Refusal) -> FlowRecord:
    """Answer a refused request with the error page and its status; what its audit line says."""
    page = page_for("error", flow.id, "", "", None, ident.policy, reason=refused.reason)
    response = make_response(render(page, flow.request.headers.get("accept")))
    response.status_code = refused.status
    answer(flow, response)
    record = FlowRecord(ident, None, "refused")
    record.extra = {"reason": refused.reason}
    return record
