"""The response deadline in-process: which flows get a timer, when it closes the upstream, and the
page and audit text of an expired flow. tests/e2e/test_deadline.py has it on the wire."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy import flow as mitmflow

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # see test_mitm_addon.py
    from mitmproxy.test import taddons, tflow

from aupgate.mitm.addon import Aupgate
from aupgate.mitm.deadline import ResponseDeadline
from aupgate.mitm.upstreamfailure import answer_failure

FIXTURES = Path(__file__).parent / "e2e" / "fixtures"


def flow_for(host: str) -> Any:
    flow = tflow.tflow()
    flow.request.host = host
    flow.request.port = 80  # tflow's port 22 is shut by the port policy
    flow.request.headers["Host"] = host
    flow.client_conn.peername = ("127.0.0.1", 50000)
    return flow


@pytest.fixture
async def addon(tmp_path: Path) -> AsyncIterator[tuple[Aupgate, Any]]:
    """Async, so that taddons.context uses the test's running loop: from a plain fixture it
    makes an event loop of its own that nobody closes (a ResourceWarning once collected)."""
    aupgate = Aupgate()
    with taddons.context(aupgate) as tctx:
        tctx.configure(aupgate, aupgate_policy_dir=str(FIXTURES / "policies"),
                       aupgate_categories=str(FIXTURES / "categories" / "sources.yaml"),
                       aupgate_audit_log=str(tmp_path / "audit.jsonl"),
                       aupgate_fixed_time="2026-11-24T10:30:00-06:00")
        yield aupgate, tctx


async def test_a_forwarded_request_has_a_deadline_until_its_answer_begins(
        addon: tuple[Aupgate, Any]) -> None:
    aupgate, _ = addon
    allowed = flow_for("www.example.org")
    aupgate.requestheaders(allowed)
    assert allowed.response is None and aupgate.deadline.pending == 1
    blocked = flow_for("www.bet365.com")  # answered by the gateway: nothing is due from a site
    aupgate.requestheaders(blocked)
    assert blocked.response is not None and aupgate.deadline.pending == 1
    aupgate.responseheaders(allowed)
    assert aupgate.deadline.pending == 0


async def test_the_option(addon: tuple[Aupgate, Any]) -> None:
    aupgate, tctx = addon
    assert aupgate.deadline.seconds == 60  # the default
    tctx.configure(aupgate, aupgate_response_timeout=0)
    aupgate.requestheaders(flow_for("www.example.org"))
    assert aupgate.deadline.pending == 0  # 0: no deadline
    with pytest.raises(exceptions.OptionsError, match="aupgate_response_timeout"):
        tctx.configure(aupgate, aupgate_response_timeout=-1)


class Closer:
    def __init__(self, found: bool = True) -> None:
        self.found = found
        self.closed: list[str] = []

    def __call__(self, flow: Any, reason: str) -> bool:
        self.closed.append(reason)
        return self.found


async def test_expiry_closes_the_upstream_once_the_request_is_sent() -> None:
    closer = Closer()
    now = [1000.0]
    deadline = ResponseDeadline(close=closer, clock=lambda: now[0])
    deadline.configure(5)
    flow = flow_for("slow.example")
    flow.response = None
    flow.live = True
    flow.request.timestamp_end = None  # the body is still arriving
    deadline._check(flow)
    assert closer.closed == [] and deadline.pending == 1  # looks again in a second
    flow.request.timestamp_end = 998.0  # sent 2 s ago: 3 s left
    deadline._check(flow)
    assert closer.closed == [] and deadline.pending == 1
    now[0] = 1003.5
    deadline._check(flow)
    assert closer.closed == ["no response within 5 s (aupgate_response_timeout)"]
    assert deadline.pending == 0
    assert deadline.stop(flow) is True  # the error hook learns the flow was cut for lateness
    assert deadline.stop(flow) is False


async def test_no_expiry_for_a_flow_that_moved_on() -> None:
    closer = Closer()
    deadline = ResponseDeadline(close=closer, clock=lambda: 10_000.0)
    answered = flow_for("a.example")
    answered.response = tflow.tresp()
    failed = flow_for("b.example")
    failed.response = None
    failed.error = mitmflow.Error("client disconnected")
    for flow in (answered, failed):
        deadline._check(flow)
    assert closer.closed == [] and deadline.pending == 0


async def test_an_upstream_that_cannot_be_found_is_left_to_mitmproxy(
        caplog: pytest.LogCaptureFixture) -> None:
    deadline = ResponseDeadline(close=Closer(found=False), clock=lambda: 10_000.0)
    flow = flow_for("a.example")
    flow.response = None
    flow.live = True
    flow.request.timestamp_end = 10_000.0 - 61  # sent 61 s ago
    with caplog.at_level(logging.WARNING, logger="aupgate.mitm.deadline"):
        deadline._check(flow)
    assert deadline.stop(flow) is False
    assert "idle timeout applies" in caplog.text


def test_an_expired_flow_gets_the_timeout_page_and_says_why() -> None:
    flow = flow_for("slow.example")
    flow.response = None
    flow.error = mitmflow.Error("server closed connection")  # what mitmproxy reports
    answer_failure(flow, None, "no response from the site within 5 s (aupgate_response_timeout)")
    assert flow.response is not None and flow.response.status_code == 504
    assert b"slow.example took too long to answer" in (flow.response.raw_content or b"")
    assert flow.error.msg.endswith("(aupgate_response_timeout)")
