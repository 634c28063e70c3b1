"""A request the site could not answer: aupgate's page for it, and what the audit line says.

mitmproxy reports an upstream failure as text in `flow.error` (`[Errno 111] Connect call failed
('10.0.0.5', 80)`, `Certificate verify failed: ...`). The employee gets aupgate's page for what
kind of failure it was (`unreachable`, `timeout`, `upstream-tls`), in plain words, with the
request id; the raw text goes only to the audit line, with the status the employee saw. The page
is sent instead of mitmproxy's own by `errorresponses`.
"""

from __future__ import annotations

import re

from mitmproxy import flow as mitmflow
from mitmproxy import http

from ..pages import page_for, render
from .errorresponses import ERROR_PAGE
from .flowtext import shown_url
from .responses import make_response, with_back
from .state import ANSWERED, FlowRecord

__all__ = ["answer_failure", "classify"]

_CLIENT_SIDE = re.compile(r"client disconnected|client closed|killed", re.IGNORECASE)
_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"errno 111\]|connection refused", re.I), "unreachable",
     "the site refused the connection"),
    (re.compile(r"errno -[235]\]|name or service not known|no address associated|"
                r"temporary failure in name resolution|nodename nor servname|dns", re.I),
     "unreachable", "the site's name was not found"),
    (re.compile(r"errno 110\]|timed out|timeout", re.I), "timeout",
     "the site did not answer in time"),
    (re.compile(r"certificate verify failed|certificate", re.I), "upstream-tls",
     "the site's certificate could not be verified"),
    (re.compile(r"tls|ssl|handshake|does not speak", re.I), "upstream-tls",
     "the secure connection to the site failed"),
    (re.compile(r"errno 10[14]\]|errno 113\]|unreachable", re.I), "unreachable",
     "there is no route to the site"),
    (re.compile(r"disconnected|reset|eof|closed", re.I), "unreachable",
     "the site closed the connection"),
)


def classify(message: str) -> tuple[str, str]:
    """(page kind, the failure in a few plain words) for mitmproxy's error text."""
    for pattern, kind, words in _RULES:
        if pattern.search(message):
            return kind, words
    return "unreachable", "the connection to the site failed"


def answer_failure(flow: http.HTTPFlow, record: FlowRecord | None,
                   deadline_passed: str | None = None) -> None:
    """In the `error` hook: put aupgate's page for this failure in `flow.response`, if the client
    has been sent nothing yet, and note the failure on the record for the audit line.

    `deadline_passed`: the gateway closed the site's connection because its answer was late
    (aupgate.mitm.deadline); this text replaces mitmproxy's ("server closed connection").
    """
    error = flow.error
    if error is None or error.msg == mitmflow.Error.KILLED_MESSAGE or flow.metadata.get(ANSWERED):
        return
    if deadline_passed:
        flow.error = mitmflow.Error(deadline_passed)
        kind, words = "timeout", "the site did not answer in time"
    elif _CLIENT_SIDE.search(error.msg):
        return  # the client went away: nobody to answer
    else:
        kind, words = classify(error.msg)
    response = flow.response
    if response is not None and response.stream:
        return  # the site's response is partly sent already; mitmproxy just closes
    policy = record.identity.policy if record is not None else None
    req = flow.request
    page = page_for(kind, flow.id, req.host, shown_url(req), None, policy, detail=words)
    extra = {} if req.is_http2 else {"Connection": "close"}
    flow.response = make_response(render(with_back(page, flow), req.headers.get("accept")), extra)
    flow.metadata[ERROR_PAGE] = True
    if record is not None:
        record.enforced = "gateway-error"
        record.extra = {**(record.extra or {}), "upstream_error": kind}
