"""The gateway's deadline for a site's answer (`aupgate_response_timeout`).

mitmproxy 11.0 waits for an upstream's response head as long as the client connection's idle
timeout allows (ten minutes), so a site that accepts the connection and never answers keeps the
employee's tab spinning for ten minutes and then ends in a closed connection. The gateway gives
a site `aupgate_response_timeout` seconds (default 60; 0: no deadline) to start its answer:

- `start`, in `requestheaders` for a request that goes upstream, sets a timer on the event loop;
- `stop`, at `responseheaders` (the head arrived) or `error`, cancels it. The body then streams
  with mitmproxy's own idle behaviour: a slow download is not a late answer;
- the deadline runs from when the client has finished sending the request (a long upload is
  the employee's time, not the site's): while the body is still arriving the timer looks again
  every second;
- when it expires, the flow's upstream connection is closed the way mitmproxy closes an idle or
  unwritable one (its handler task is cancelled), mitmproxy fails the flow and runs the `error`
  hook, and `upstreamfailure` answers with aupgate's "timeout" page (504) and the audit line.

No hook can close a server connection, so `close_upstream` reaches for the one thing it needs:
the proxyserver addon's `connections` (by client connection id) and that handler's `transports`
(by server connection). If either is not there (a mitmproxy that moved them, a QUIC flow), the
deadline is skipped with a warning and mitmproxy's idle timeout applies as before. Over HTTP/2
to the site, one connection carries several requests: closing it for a late one fails the
others in flight on it too, each with its own error page (docs/proxy.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, http

from .options import RESPONSE_TIMEOUT

__all__ = ["DEFAULT_SECONDS", "ResponseDeadline", "close_upstream"]

logger = logging.getLogger(__name__)

DEFAULT_SECONDS = RESPONSE_TIMEOUT
_UPLOAD_POLL = 1.0  # seconds between looks while the request body is still arriving


def close_upstream(flow: http.HTTPFlow, reason: str) -> bool:
    """Close `flow`'s connection to the site as mitmproxy closes an idle one; False if it is not
    found (then nothing was done)."""
    if flow.client_conn.transport_protocol != "tcp":
        return False
    proxyserver: Any = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
    handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
    transports: dict[Any, Any] = getattr(handler, "transports", {})
    upstream = _upstream_of(flow, transports)
    task = getattr(transports.get(upstream), "handler", None)
    if not isinstance(task, asyncio.Task) or task.done():
        return False
    task.cancel(reason)
    return True


def _upstream_of(flow: http.HTTPFlow, transports: dict[Any, Any]) -> Any:
    """The flow's connection to the site: `flow.server_conn` once it is established; while it is
    still connecting or in its TLS handshake (a site that accepts and never answers the
    ClientHello), mitmproxy has not yet named it on the flow, so the client connection's
    connection to the same address that is not yet ready."""
    if flow.server_conn in transports:
        return flow.server_conn
    wanted = (flow.request.host, flow.request.port)
    for conn in transports:
        if conn is flow.client_conn or conn.address != wanted:
            continue
        if not conn.connected or (conn.tls and not conn.tls_established):
            return conn
    return None


class ResponseDeadline:
    """One timer per request waiting for its site's answer; remembers which ones expired."""

    def __init__(self, close: Callable[[http.HTTPFlow, str], bool] = close_upstream,
                 clock: Callable[[], float] = time.time) -> None:
        self.seconds: int = DEFAULT_SECONDS
        self._close = close
        self._clock = clock  # the clock of `request.timestamp_end`
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._expired: weakref.WeakSet[http.HTTPFlow] = weakref.WeakSet()
        self._warned = False

    def configure(self, seconds: int) -> None:
        if seconds < 0:
            raise ValueError("aupgate_response_timeout must be zero (no deadline) or more")
        self.seconds = seconds

    def start(self, flow: http.HTTPFlow) -> None:
        """A request is going to its site: its answer is due within the deadline."""
        if not self.seconds or flow.response is not None or flow.error is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop, no proxy (a flow handled outside one)
            return
        self._timers[flow.id] = loop.call_later(self.seconds, self._check, flow)

    def stop(self, flow: http.HTTPFlow) -> bool:
        """The answer began, or the flow failed: no more deadline. True if it had expired."""
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.cancel()
        expired = flow in self._expired
        self._expired.discard(flow)
        return expired

    @property
    def pending(self) -> int:
        return len(self._timers)

    def _check(self, flow: http.HTTPFlow) -> None:
        self._timers.pop(flow.id, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return  # answered, failed or finished meanwhile
        loop = asyncio.get_running_loop()
        sent = flow.request.timestamp_end
        if sent is None or flow.intercepted:  # still uploading, or held by an operator
            self._timers[flow.id] = loop.call_later(_UPLOAD_POLL, self._check, flow)
            return
        left = sent + self.seconds - self._clock()
        if left > 0.01:
            self._timers[flow.id] = loop.call_later(left, self._check, flow)
            return
        reason = f"no response within {self.seconds} s (aupgate_response_timeout)"
        if self._close(flow, reason):
            self._expired.add(flow)
        elif not self._warned:
            self._warned = True
            logger.warning("aupgate: cannot close the connection of a request past its "
                           "deadline (%s); mitmproxy's idle timeout applies", flow.request.host)

    def error_text(self) -> str:
        """What the audit line says failed, for an expired request."""
        return f"no response from the site within {self.seconds} s (aupgate_response_timeout)"
