"""aupgate's own answers where mitmproxy 11.0 would send its bare error page.

When the upstream refuses, times out or fails TLS, mitmproxy's HTTP layer sets `flow.error`, runs
the `error` hook, and then sends the client `make_error_response(502, message)`: a page titled
"502 Bad Gateway" carrying the raw error (`[Errno 111] Connect call failed ...`) and a
`Server: mitmproxy 11.0.2` header. No hook can replace it: what is sent is built from the
protocol event, after the hook, and `flow.response` is not consulted.

So, without forking mitmproxy, two of its functions are wrapped once per process (`install`):

- `HttpStream.handle_protocol_error`: when the `error` hook has put aupgate's page in
  `flow.response` (and marked the flow with `ERROR_PAGE`), the error event it would send the
  client is replaced by that response (headers, body, end), over HTTP/1 and HTTP/2 alike. Every
  other command passes through unchanged, with its reply;
- `_http1.make_error_response`, for errors no hook sees (a request line that cannot be read): the
  same status with a plain page and no `Server` header or raw error text.

Both are checked to exist and to have the expected signature when installed, and
tests/test_mitm_errorresponses.py holds the shapes they rely on, so a mitmproxy upgrade that
moves them fails a test instead of silently showing mitmproxy's page again.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Generator
from typing import Any

from mitmproxy import http
from mitmproxy.net.http import http1, status_codes
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import (
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)

__all__ = ["ERROR_PAGE", "generic_error_response", "install", "installed"]

ERROR_PAGE = "aupgate_error_page"
"""`flow.metadata` key, True when `flow.response` is aupgate's page for a failed flow."""

_MARK = "_aupgate_error_pages"


def installed() -> bool:
    return bool(getattr(http_layer.HttpStream.handle_protocol_error, _MARK, False))


def install() -> None:
    """Wrap mitmproxy's error answers (once per process; later calls do nothing)."""
    if installed():
        return
    original = http_layer.HttpStream.handle_protocol_error
    if list(inspect.signature(original).parameters) != ["self", "event"]:
        raise RuntimeError("mitmproxy's HttpStream.handle_protocol_error has changed; "
                           "aupgate.mitm.errorresponses must be updated")

    def handle_protocol_error(self: Any, event: Any) -> Generator[Any, Any, Any]:
        steps = original(self, event)
        reply: Any = None
        while True:
            try:
                command = steps.send(reply)
            except StopIteration as stop:
                return stop.value
            response = _replacement(self, command)
            if response is None:
                reply = yield command
                continue
            yield from _send(self, response)
            reply = None

    setattr(handle_protocol_error, _MARK, True)
    handle_protocol_error.__doc__ = original.__doc__
    http_layer.HttpStream.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]
    _http1.make_error_response = generic_error_response


def _replacement(stream: Any, command: Any) -> http.Response | None:
    """aupgate's page, when `command` sends the client the protocol error of a flow that has one."""
    if not isinstance(command, http_layer.SendHttp):
        return None
    event = command.event
    if not isinstance(event, ResponseProtocolError):
        return None
    if event.code == status_codes.NO_RESPONSE or command.connection is not stream.context.client:
        return None
    flow = getattr(stream, "flow", None)
    if flow is None or not flow.metadata.get(ERROR_PAGE) or flow.response is None:
        return None
    response: http.Response = flow.response
    return response


def _send(stream: Any, response: http.Response) -> Generator[Any, Any, None]:
    client = stream.context.client
    body = response.raw_content or b""
    yield http_layer.SendHttp(ResponseHeaders(stream.stream_id, response, not body),
                              client)
    if body:
        yield http_layer.SendHttp(ResponseData(stream.stream_id, body), client)
    yield http_layer.SendHttp(ResponseEndOfMessage(stream.stream_id), client)


def generic_error_response(status_code: int, message: str = "") -> bytes:
    """mitmproxy's `make_error_response`, without its `Server` header or the raw error text."""
    reason = status_codes.RESPONSES.get(status_code, "Error")
    title = html.escape(f"{status_code} {reason}")
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}"
            f"</title></head><body><h1>{title}</h1><p>The agency gateway could not read this "
            "request.</p></body></html>\n")
    response = http.Response.make(status_code, body, {
        "Connection": "close", "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store"})
    return bytes(http1.assemble_response(response))  # type: ignore[no-untyped-call]
