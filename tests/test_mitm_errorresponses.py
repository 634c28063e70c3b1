"""The shapes of mitmproxy 11.0 that `aupgate.mitm.errorresponses` relies on to send aupgate's
page instead of mitmproxy's bare 502, held here so an upgrade that moves them fails a test
instead of silently showing "Server: mitmproxy" and `[Errno 111]` to employees again.
tests/e2e/test_pages_e2e.py has the pages on the wire."""

from __future__ import annotations

import inspect

from mitmproxy.net.http import status_codes
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from aupgate.mitm import errorresponses


def test_install_wraps_once_and_marks_it() -> None:
    errorresponses.install()
    wrapped = http_layer.HttpStream.handle_protocol_error
    assert errorresponses.installed()
    errorresponses.install()  # a second addon instance, a reloaded script: no double wrap
    assert http_layer.HttpStream.handle_protocol_error is wrapped
    assert _http1.make_error_response is errorresponses.generic_error_response


def test_the_hooks_it_wraps_are_where_it_expects() -> None:
    """The wrapped method's original takes (self, event); _http1 calls make_error_response by its
    module-level name (so replacing the name replaces what it sends)."""
    source = inspect.getsource(_http1)
    assert "make_error_response(event.code, event.message)" in source
    assert "def make_error_response(" in source
    stream_source = inspect.getsource(http_layer.HttpStream)
    assert "def handle_protocol_error(" in stream_source
    for attribute in ("self.flow", "self.stream_id", "self.context.client"):
        assert attribute in stream_source, attribute


def test_the_events_it_reads_and_sends() -> None:
    error = ResponseProtocolError(1, "[Errno 111] Connect call failed", 502)
    assert (error.stream_id, error.message, error.code) == (1, "[Errno 111] Connect call failed",
                                                            502)
    assert isinstance(status_codes.NO_RESPONSE, int)
    send = http_layer.SendHttp(error, object())  # type: ignore[arg-type]
    assert send.event is error


def test_the_generic_error_response_says_nothing_of_mitmproxy() -> None:
    raw = errorresponses.generic_error_response(400, "[Errno 104] bad request line b'\\x16\\x03'")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    assert status_line == "HTTP/1.1 400 Bad Request"
    headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    assert "server" not in headers
    assert headers["connection"] == "close" and headers["cache-control"] == "no-store"
    assert int(headers["content-length"]) == len(body)
    assert b"Errno" not in raw and b"mitmproxy" not in raw.lower()
    assert b"<h1>400 Bad Request</h1>" in body
    assert b"<h1>599 Error</h1>" in errorresponses.generic_error_response(599)

