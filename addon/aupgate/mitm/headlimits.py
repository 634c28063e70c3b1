"""Cut off an HTTP/1 request head that grows past the limits while it is still arriving.

mitmproxy 11.0.2 buffers a request head until its blank line, however long it gets (its own
source says "FIXME: protect against header size DoS"): one 20 MB URL was held, decided and
written to the audit whole, and kept +210 MB of resident memory. `install()` wraps its HTTP/1
server reader so that a head whose first line passes `MAX_TARGET` (plus room for the method and
version) is answered 414, and one that passes `MAX_HEAD` without ending is answered 431, and the
connection closed, without the rest being read. `requestshape` then checks every parsed head
(HTTP/2 included) against the same limits.

What was refused is handed to `on_refused` (the addon audits it); the buffer is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from h11._receivebuffer import ReceiveBuffer
from mitmproxy import connection
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1

from .requestshape import MAX_HEAD, MAX_TARGET

__all__ = ["forget", "install", "listen", "oversized"]

logger = logging.getLogger(__name__)

LINE_ROOM = 64
"""Method, spaces and version around the request target on the request line."""

Refused = Callable[[connection.Client, int, str], None]
on_refused: list[Refused] = []
"""Who is told of a refused head (the addon's audit); a list so that tests may add one."""


def oversized(head: bytes, total: int) -> tuple[int, str] | None:
    """(status, reason) when a head still arriving is already too large; else None.

    `head` is the start of the buffer (at least `MAX_HEAD + 1` bytes of it when there are that
    many), `total` the buffer's whole length.
    """
    if total <= 8192:
        return None  # the common case: nothing to look at
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    line_end = head.find(b"\n")
    if (line_end < 0 and total > MAX_TARGET + LINE_ROOM) or line_end > MAX_TARGET + LINE_ROOM:
        return 414, f"The request target is longer than {MAX_TARGET // 1024} KiB."
    if 0 <= end < MAX_HEAD:
        return None  # complete and within bounds: requestshape checks the parsed head
    if total > MAX_HEAD:
        return 431, f"The request head is larger than {MAX_HEAD // 1024} KiB."
    return None


def listen(tell: Refused) -> None:
    """Have `tell` told of every refused head (once, however often it asks)."""
    if tell not in on_refused:
        on_refused.append(tell)


def forget(tell: Refused) -> None:
    """`tell` is told no more."""
    if tell in on_refused:
        on_refused.remove(tell)


_installed: list[Callable[..., Any]] = []


def install() -> None:
    """Wrap mitmproxy's HTTP/1 server reader (once per process)."""
    if _installed:
        return
    original = _http1.Http1Server.read_headers
    _installed.append(original)

    def read_headers(self: _http1.Http1Server,
                     event: events.ConnectionEvent) -> Generator[Any, Any, None]:
        if isinstance(event, events.DataReceived) and len(self.buf) > 8192:
            found = oversized(bytes(self.buf)[: MAX_HEAD + 1], len(self.buf))
            if found is not None:
                status, reason = found
                yield commands.SendData(self.conn, _http1.make_error_response(status, reason))
                yield commands.CloseConnection(self.conn)
                self.state = self.done
                size = len(self.buf)
                self.buf = ReceiveBuffer()  # let go of it now
                for tell in on_refused:
                    try:
                        tell(self.context.client, status, f"{reason} ({size} bytes received)")
                    except Exception:  # the refusal stands whatever the audit does
                        logger.exception("aupgate: could not record a refused request head")
                return
        yield from original(self, event)

    _http1.Http1Server.read_headers = read_headers  # type: ignore[method-assign]
