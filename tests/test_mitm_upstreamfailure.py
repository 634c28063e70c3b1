"""The error classifier and aupgate's page for a request its site could not answer: mitmproxy's
error texts as 11.0 writes them, each to the kind of page the employee sees; no page when the
client went away, the flow was killed, aupgate answered already or the response is streaming."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from mitmproxy import flow as mitmflow

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # see test_mitm_addon.py
    from mitmproxy.test import tflow

from aupgate.mitm.errorresponses import ERROR_PAGE
from aupgate.mitm.state import ANSWERED
from aupgate.mitm.upstreamfailure import answer_failure, classify


@pytest.mark.parametrize(("message", "kind", "words"), [
    ("[Errno 111] Connect call failed ('127.0.0.1', 9)", "unreachable",
     "the site refused the connection"),
    ("Connection refused", "unreachable", "the site refused the connection"),
    ("[Errno -2] Name or service not known", "unreachable", "the site's name was not found"),
    ("[Errno -3] Temporary failure in name resolution", "unreachable",
     "the site's name was not found"),
    ("[Errno -5] No address associated with hostname", "unreachable",
     "the site's name was not found"),
    ("[Errno 110] Connect call failed ('10.0.0.5', 80)", "timeout",
     "the site did not answer in time"),
    ("TimeoutError: timed out", "timeout", "the site did not answer in time"),
    ("Certificate verify failed: unable to get local issuer certificate", "upstream-tls",
     "the site's certificate could not be verified"),
    ("Certificate verify failed: Hostname mismatch", "upstream-tls",
     "the site's certificate could not be verified"),
    ("TLS handshake failed: wrong version number", "upstream-tls",
     "the secure connection to the site failed"),
    ("[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version", "upstream-tls",
     "the secure connection to the site failed"),
    ("[Errno 113] No route to host", "unreachable", "there is no route to the site"),
    ("[Errno 101] Network is unreachable", "unreachable", "there is no route to the site"),
    ("server closed connection", "unreachable", "the site closed the connection"),
    ("Connection reset by peer", "unreachable", "the site closed the connection"),
    ("peer closed connection without sending complete message body: incomplete chunked read",
     "unreachable", "the site closed the connection"),
    ("something nobody has seen before", "unreachable", "the connection to the site failed"),
    ("", "unreachable", "the connection to the site failed"),
])
def test_classify(message: str, kind: str, words: str) -> None:
    assert classify(message) == (kind, words)


def failed(message: str, accept: str = "text/html") -> Any:
    flow = tflow.tflow()
    flow.request.host = "down.example"
    flow.request.headers["Accept"] = accept
    flow.response = None
    flow.error = mitmflow.Error(message)
    return flow


def test_a_refused_site_gets_aupgates_page_not_the_raw_error() -> None:
    flow = failed("[Errno 111] Connect call failed ('127.0.0.1', 9)")
    answer_failure(flow, None)
    assert flow.response.status_code == 502
    body = flow.response.get_text()
    assert "the site refused the connection" in body and flow.id in body
    assert "Errno" not in body and "mitmproxy" not in body.lower()
    assert "Server" not in flow.response.headers
    assert flow.response.headers["Connection"] == "close"
    assert flow.metadata[ERROR_PAGE] is True
    assert flow.error.msg.startswith("[Errno 111]")  # the raw text is kept for the audit line


def test_a_timeout_is_504_and_a_tls_failure_502() -> None:
    for message, status in (("[Errno 110] Connect call failed", 504),
                            ("Certificate verify failed: self-signed certificate", 502)):
        flow = failed(message)
        answer_failure(flow, None)
        assert flow.response.status_code == status, message


def test_a_script_asking_for_json_gets_json() -> None:
    flow = failed("[Errno 111] Connect call failed", accept="application/json")
    answer_failure(flow, None)
    assert flow.response.headers["Content-Type"].startswith("application/json")
    assert '"request_id"' in flow.response.get_text()


@pytest.mark.parametrize("message", ["Client disconnected.", "client closed connection",
                                     mitmflow.Error.KILLED_MESSAGE])
def test_nobody_to_answer(message: str) -> None:
    flow = failed(message)
    answer_failure(flow, None)
    assert flow.response is None and ERROR_PAGE not in flow.metadata


def test_no_page_once_aupgate_answered_or_the_response_is_streaming() -> None:
    answered = failed("server closed connection")
    answered.metadata[ANSWERED] = True
    answer_failure(answered, None)
    assert answered.response is None
    streaming = failed("server closed connection")
    streaming.response = tflow.tresp()
    streaming.response.stream = True
    sent = streaming.response
    answer_failure(streaming, None)
    assert streaming.response is sent  # partly sent already: mitmproxy just closes


def test_no_error_nothing_to_do() -> None:
    flow = tflow.tflow()
    flow.response = None
    answer_failure(flow, None)
    assert flow.response is None
