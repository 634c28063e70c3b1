"""Request bodies at the proxy: what a request sends, counting and reading it as it streams, and
stopping an upload that turns out to break the policy.

`requestheaders` decides a request before its body is read (`aupgate.uploads.request_body`: the
method, the framing and body headers). A body whose length is not stated, or a form upload, is
then streamed through `upload_stream`, which counts the bytes (past the agency's limit the content
rules decide `large-transfer`, MoDOT 9.D) and reads each form part's head (a program among the
files is `executable`, MoDOT 22). When the content rules block (or warn without a live pass), the
upload is stopped mid-body: nothing more is forwarded, the upstream connection is aborted so the
server never sees a complete body (a chunked body would otherwise be ended cleanly, truncated),
the flow is killed, and the request is audited at once (`enforced: cut`).

A request that is answered with a page at `requestheaders` still has its body read by mitmproxy
before the page goes out, and mitmproxy keeps that body in memory: a body over `PAGE_BODY_LIMIT`,
or of unknown length, is refused by closing the connection instead (`refuse_body`), so no
upload can make the gateway hold gigabytes to show a page.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from mitmproxy import ctx, http

from ..engine import Decision
from ..policy.model import STOPPING
from ..uploads import PartScanner, RequestBody, multipart_boundary, request_body
from .state import FlowRecord

__all__ = ["PAGE_BODY_LIMIT", "body_of", "needs_stream", "refuse_body", "upload_stream"]

logger = logging.getLogger(__name__)

PAGE_BODY_LIMIT = 1024 * 1024
"""The largest stated request body mitmproxy reads into memory to show a page after it."""

_LARGE = frozenset({"large-transfer"})
_PROGRAM = frozenset({"executable"})


def body_of(req: http.Request, path: str, query: str, limit: int | None) -> RequestBody:
    """What the request's headers say it sends."""
    headers = req.headers
    return request_body(
        method=req.method, content_length=headers.get("content-length"),
        transfer_encoding=headers.get("transfer-encoding"),
        multiplexed=req.is_http2 or req.is_http3,
        content_type=headers.get("content-type"),
        disposition=headers.get("content-disposition"), path=path, query=query,
        limit_bytes=limit)


def needs_stream(body: RequestBody, req: http.Request, limit: int | None) -> bytes | None:
    """b"" when the body must be counted (its length is unknown: against the limit, and to
    check how it is framed upstream), the multipart boundary when its parts must be read, else
    None (mitmproxy forwards it as is)."""
    boundary = multipart_boundary(req.headers.get("content-type"))
    if boundary is not None and body.sends_body:
        return boundary
    if body.counted and (limit is not None or req.is_http2 or req.is_http3):
        return b""
    return None


def _unframed(flow: http.HTTPFlow) -> bool:
    """An HTTP/2 or 3 body without a stated length, going to an HTTP/1 server: mitmproxy 11
    sends such a body with no framing at all (no Content-Length, not chunked), so its bytes
    would be read as further requests (smuggled). It is never forwarded."""
    req = flow.request
    if not (req.is_http2 or req.is_http3) or "content-length" in req.headers:
        return False
    return flow.server_conn.alpn not in (b"h2", b"h3")


def refuse_body(flow: http.HTTPFlow) -> bool:
    """For a request answered at `requestheaders`: True when its body is too large (or of
    unknown length) for mitmproxy to read before the page, so the connection is closed instead
    (the flow is killed; the caller's record still says what was decided)."""
    req = flow.request
    length = req.headers.get("content-length", "").strip()
    chunked = "chunked" in req.headers.get("transfer-encoding", "").lower()
    unknown = chunked or (not length and (req.is_http2 or req.is_http3)
                          and req.method.upper() in ("POST", "PUT", "PATCH"))
    too_big = unknown or (length.isdigit() and int(length) > PAGE_BODY_LIMIT)
    if too_big and flow.killable:
        flow.kill()  # type: ignore[no-untyped-call]
        return True
    return False


def upload_stream(
    flow: http.HTTPFlow,
    record: FlowRecord,
    limit: int | None,
    boundary: bytes,
    *,
    decide: Callable[[frozenset[str]], Decision | None],
    pass_covers: Callable[[Decision], bool],
    fail: Callable[[BaseException], None],
    audit: Callable[[], None],
) -> Callable[[bytes], bytes]:
    """A request stream callable: counts the body, reads form part heads, stops the upload.

    `decide` is the content rules' decision for the kinds given (the request's direction
    included); `pass_covers` whether a live warn pass lets a decision through; `fail` fails the
    flow closed; `audit` writes the request's audit line now.
    """
    scanner = PartScanner(boundary) if boundary else None
    counted = 0
    stopped = False
    judged: set[str] = set()  # kinds decided already (each once)
    record.request_bytes = 0

    def judge(kinds: frozenset[str], detail: str) -> bool:
        """Decide `kinds`; True when the upload must stop."""
        if kinds <= judged:
            return False
        judged.update(kinds)
        decision = decide(kinds)
        if decision is None or decision.action not in STOPPING:
            return False
        content = sorted({*(record.extra or {}).get("content", ()), *kinds})
        record.extra = {**(record.extra or {}), "content": content}
        record.decision, record.phase = decision, "upload"
        if decision.action == "warn" and pass_covers(decision):
            return False
        record.enforced = "cut"
        logger.warning("aupgate: upload stopped at %d bytes (%s): %s", counted, detail,
                       flow.request.host)
        return True

    def stream(data: bytes) -> bytes:
        nonlocal counted, stopped
        if stopped:
            return b""
        if counted == 0 and _unframed(flow):
            stopped = True
            record.enforced, record.phase = "refused", "upload"
            logger.warning("aupgate: an HTTP/2 body of unknown length cannot be framed for the "
                           "HTTP/1 server %s; not forwarded", flow.request.host)
            _abort(flow)
            with contextlib.suppress(Exception):
                audit()
            return b""
        counted += len(data)
        record.request_bytes = counted
        try:
            stop = False
            if scanner is not None and data:
                programs = scanner.feed(data)
                if programs:
                    stop = judge(_PROGRAM, f"a program, {programs[0]!r}")
            if not stop and limit is not None and counted > limit:
                stop = judge(_LARGE, f"over the limit of {limit} bytes")
        except Exception as exc:  # fail closed inside the stream too
            stopped = True
            _abort(flow)
            fail(exc)
            return b""
        if not stop:
            return data
        stopped = True
        _abort(flow)
        try:  # audited now: the flow ends with an error, or lingers
            audit()
        except Exception:  # the upload is stopped already; only the record is lost
            logger.exception("aupgate: could not audit a stopped upload")
        return b""

    return stream


def _abort(flow: http.HTTPFlow) -> None:
    """Stop the upload: the upstream connection is aborted mid-body (the server sees the body
    cut short, never ended), and the flow is killed (the client's connection is closed)."""
    with contextlib.suppress(Exception):  # no connection (yet, or any more): nothing to abort
        server = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
        handler = server.connections.get(flow.client_conn.id)
        io = handler.transports.get(flow.server_conn) if handler is not None else None
        writer = io.writer if io is not None else None
        if writer is not None:
            writer.transport.abort()
    if flow.killable:
        flow.kill()  # type: ignore[no-untyped-call]
