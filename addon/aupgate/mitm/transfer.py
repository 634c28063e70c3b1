"""Counting a transfer whose size the headers do not state, and stopping it past the limit.

MoDOT 9.D limits large transfers; a response without a Content-Length (chunked, streamed) can only
be judged as it flows. The body is streamed through a counter; past the agency's limit the content
rules decide `large-transfer` once: a block (or a warn without a pass) cuts the transfer (no page
can be shown mid-body) and audits it at once; a warn under a live pass lets it through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http

from ..engine import Decision
from ..policy.model import STOPPING
from .state import FlowRecord

__all__ = ["counting_stream"]

logger = logging.getLogger(__name__)

_LARGE = frozenset({"large-transfer"})


def counting_stream(
    flow: http.HTTPFlow,
    record: FlowRecord,
    limit: int,
    *,
    decide: Callable[[frozenset[str]], Decision | None],
    pass_covers: Callable[[Decision], bool],
    fail: Callable[[BaseException], None],
    audit: Callable[[], None],
) -> Callable[[bytes], bytes]:
    """A stream callable that counts bytes and stops the transfer past `limit`.

    `decide` is the content rules' decision for the kinds given; `pass_covers` says whether a
    live warn pass covers a decision (and records that it did); `fail` fails the flow closed;
    `audit` writes the request's audit line now.
    """
    counted = 0
    stopped = False
    passed = False  # past the limit under a warn pass: decided once, then let through

    def stream(data: bytes) -> bytes:
        nonlocal counted, stopped, passed
        if stopped:
            return b""
        counted += len(data)
        record.bytes_counted = counted
        if counted <= limit or passed:
            return data
        try:
            decision = decide(_LARGE)
        except Exception as exc:  # fail closed inside the stream too
            stopped = True
            fail(exc)
            return b""
        if decision is None or decision.action not in STOPPING:
            return data
        if decision.action == "warn" and pass_covers(decision):
            # the body is under way: a page cannot be shown now, but a pass lets it through
            record.decision, record.phase = decision, "stream"
            record.extra = {**(record.extra or {}), "content": ["large-transfer"]}
            passed = True
            return data
        stopped = True
        record.decision = decision
        record.phase = "stream"
        record.enforced = "cut"
        record.extra = {**(record.extra or {}), "content": ["large-transfer"]}
        if flow.killable:
            flow.kill()  # type: ignore[no-untyped-call]
        logger.warning("aupgate: transfer cut at %d bytes (limit %d): %s", counted, limit,
                       flow.request.host)
        try:  # audited now: the flow may linger until the upstream stops
            audit()
        except Exception:  # the transfer is stopped already; only the record is lost
            logger.exception("aupgate: could not audit a cut transfer")
        return b""

    return stream
