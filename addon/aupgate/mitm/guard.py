"""Failing closed: a hook that raises must block what it was deciding, never pass it.

mitmproxy logs an exception raised in an addon hook as "Addon error" and carries on, which for a
request means forwarding it. `guarded` wraps a hook so that any exception goes to a handler
instead; the handlers here answer with an error page (or kill a flow whose body is under way),
fail a tunnel's upstream connection, and audit an `engine_error`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from mitmproxy import exceptions, http

from ..audit.log import AuditLog
from ..pages import Page, page_for, render
from .responses import make_response, replace_streaming

__all__ = [
    "Guarded",
    "InjectedFaultError",
    "Later",
    "fail_flow",
    "fail_server",
    "fail_tcp",
    "fail_tls",
    "guarded",
    "options_error",
    "refuse_unrecorded",
]

logger = logging.getLogger(__name__)

S = TypeVar("S")
A = TypeVar("A")


class InjectedFaultError(RuntimeError):
    """Raised on purpose by `aupgate_fault` (test mode only) to prove the gateway fails closed."""


def options_error(message: str) -> exceptions.OptionsError:
    """mitmproxy's OptionsError is untyped; one typed place to build it."""
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


Later = Awaitable[None] | None
"""What a hook returns: None when it is done, or an awaitable mitmproxy waits for before it goes
on with the flow (a login that needs the directory); a plain function returning one costs the
common, synchronous path nothing, where an `async def` hook would cost a coroutine per request."""


def guarded(
    on_error: Callable[[Any, Any, BaseException], None],
) -> Callable[[Callable[[S, A], Later]], Callable[[S, A], Later]]:
    """Run a hook so that an exception blocks what it was deciding instead of passing it.

    `on_error(addon, data, exc)` is one of the handlers below: it receives the addon the hook is
    a method of (a `Guarded`). An awaitable the hook returns is guarded the same way.

    Every mitmproxy hook takes one argument (the flow, or the hook's data), so the wrapper takes
    exactly one: it runs for every request, and packing `*args` costs more than the call.
    """

    def fail(self: S, data: A, exc: Exception) -> None:
        try:
            on_error(self, data, exc)
        except Exception:  # pragma: no cover - last resort: never let it propagate
            logger.exception("aupgate: failed while failing closed")

    async def finish(self: S, data: A, later: Awaitable[None]) -> None:
        try:
            await later
        except Exception as exc:  # fail closed on anything, after the wait too
            fail(self, data, exc)

    def wrap(hook: Callable[[S, A], Later]) -> Callable[[S, A], Later]:
        def run(self: S, data: A, /) -> Later:
            try:
                later = hook(self, data)
            except Exception as exc:  # fail closed on anything
                fail(self, data, exc)
                return None
            return None if later is None else finish(self, data, later)

        run.__doc__ = hook.__doc__
        run.__name__ = hook.__name__
        return run

    return wrap


class Guarded(Protocol):
    """What the handlers need of the addon: its audit log, flow records and tunnels."""

    audit: AuditLog

    def record_of(self, flow: http.HTTPFlow) -> Any: ...

    def refuse_tunnel(self, client_id: str, message: str) -> None: ...


def fail_flow(addon: Guarded, flow: Any, exc: BaseException) -> None:
    """An HTTP hook raised: answer with the error page (or kill the flow), then audit it."""
    logger.error("aupgate: engine error, request blocked: %r", exc, exc_info=exc)
    digest = None
    if isinstance(flow, http.HTTPFlow):
        record = addon.record_of(flow)
        if record is not None:
            digest = record.identity.policy_digest
            record.enforced = "error"
            record.audited = True  # the engine_error event is this request's record
        if flow.response is not None and flow.response.stream:
            # the body is already on its way: stopping it is all that is left
            if flow.killable:
                flow.kill()  # type: ignore[no-untyped-call]
        else:
            page = page_for("error", flow.id, flow.request.host, "", None, None)
            rendered = render(page, flow.request.headers.get("accept"))
            if flow.response is not None:
                replace_streaming(flow, rendered)
            elif flow.live:
                flow.response = make_response(rendered)
    with contextlib.suppress(Exception):  # the audit may be what failed
        addon.audit.event("engine_error", request_id=getattr(flow, "id", ""),
                          host=getattr(getattr(flow, "request", None), "host", None),
                          policy_digest=digest, error=repr(exc), action="block")


def fail_tls(addon: Guarded, data: Any, exc: BaseException) -> None:
    """The ClientHello hook raised: pass the TLS through and fail its upstream connection."""
    logger.error("aupgate: engine error at ClientHello, connection blocked: %r", exc,
                 exc_info=exc)
    client = data.context.client
    addon.refuse_tunnel(client.id, "aupgate engine error")
    data.ignore_connection = True
    with contextlib.suppress(Exception):
        addon.audit.event("engine_error", request_id=client.id, phase="tls",
                          sni=getattr(data.client_hello, "sni", None), error=repr(exc),
                          action="block")


def fail_server(addon: Guarded, data: Any, exc: BaseException) -> None:
    """The upstream-connection hook raised: the connection is refused."""
    logger.error("aupgate: engine error at server_connect, connection refused: %r", exc,
                 exc_info=exc)
    data.server.error = "aupgate engine error"
    with contextlib.suppress(Exception):
        addon.audit.event("engine_error", request_id=data.client.id, phase="server_connect",
                          error=repr(exc), action="block")



def refuse_unrecorded(audit: AuditLog, flow: http.HTTPFlow,
                      respond: Callable[[http.HTTPFlow, Page, None], None]) -> bool:
    """With on_audit_failure=fail-closed and the audit file unwritable, nothing passes: True
    when `flow` was answered with the "unavailable" page.

    Every write retries the file: this tries to record the request, and serves it if that
    worked.
    """
    if not _refusing(audit):
        return False
    with contextlib.suppress(Exception):
        audit.event("audit_probe", request_id=flow.id, host=flow.request.host)
    if not _refusing(audit):
        return False  # the probe got through: the file is back
    logger.critical("aupgate: audit log unwritable (on_audit_failure=fail-closed): "
                    "refusing %s", flow.request.host)
    respond(flow, page_for("unavailable", flow.id, flow.request.host, "", None, None), None)
    return True


def _refusing(audit: AuditLog) -> bool:
    return audit.refusing
def fail_tcp(addon: Guarded, flow: Any, exc: BaseException) -> None:
    """The raw-tunnel hook raised: the tunnel's upstream connection is refused."""
    logger.error("aupgate: engine error at tcp_start, tunnel refused: %r", exc, exc_info=exc)
    addon.refuse_tunnel(flow.client_conn.id, "aupgate engine error")
    with contextlib.suppress(Exception):
        addon.audit.event("engine_error", request_id=flow.id, phase="tcp", error=repr(exc),
                          action="block")
