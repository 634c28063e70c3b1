"""Window boundaries at the edge: one timer per agency that fires when the policy clock reaches
the boundary (and not before, even when the clock is stepped), passes that end with their
window (shared between workers too), and the running test clock."""

from __future__ import annotations

import asyncio
import io
import json
import time
import weakref
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from mitmproxy.test import tflow

from aupgate.audit.log import AuditLog
from aupgate.engine import Decision
from aupgate.identity import Identity
from aupgate.mitm.boundaries import MAX_SLEEP, BoundaryWatch, window_tag
from aupgate.mitm.deciding import Decider
from aupgate.mitm.passes import Passes, WindowEnd, browser_holder
from aupgate.mitm.reassess import Boundaries, Room, _stops
from aupgate.mitm.sharedpasses import SharedPasses, encode
from aupgate.mitm.state import FlowRecord, FlowRecords
from aupgate.mitm.warnflow import WarnFlow
from aupgate.policy.boundaries import Boundary
from aupgate.policy.loader import load_policy
from aupgate.policy.model import Policy

LAB = Path(__file__).parent / "e2e" / "fixtures" / "policies" / "lab.yaml"
KEY = (browser_holder("a pass cookie"), "www.facebook.com")  # (holder, host)
CLIENT = "10.30.0.2"


def lab() -> Policy:
    policy, problems = load_policy(LAB, today=date(2026, 11, 24))
    assert policy is not None, problems
    return policy


class Clock:
    """A policy clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_one_timer_per_agency_fires_at_the_boundary_and_rearms() -> None:
    clock = Clock(datetime(2026, 11, 24, 18, 59, 59, 900_000, tzinfo=UTC))  # 12:59:59.9 CST
    seen: list[tuple[str, Boundary]] = []
    watch = BoundaryWatch(clock, lambda policy, b: seen.append((policy.agency, b)))
    loop = asyncio.get_running_loop()
    watch.arm(loop, {"lab": lab()})
    boundary = watch.next_for("lab")
    assert boundary is not None and (boundary.before, boundary.after) == ("lunch", "work")
    assert len(watch._timers) == 1
    await asyncio.sleep(0.05)
    assert seen == []  # the clock has not reached 13:00
    clock.at += timedelta(seconds=0.2)
    await asyncio.sleep(0.3)  # the timer slept 0.1 s + LATE and finds the clock past 13:00
    assert [(a, b.after) for a, b in seen] == [("lab", "work")]
    following = watch.next_for("lab")
    assert following is not None and following.before == "work" and following.after == "after-work"
    watch.stop()
    assert watch._timers == {}


async def test_a_timer_woken_early_sleeps_again() -> None:
    """The wall clock was set back while the timer slept: nothing happens before the boundary."""
    clock = Clock(datetime(2026, 11, 24, 18, 59, 59, 950_000, tzinfo=UTC))
    seen: list[Boundary] = []
    watch = BoundaryWatch(clock, lambda policy, b: seen.append(b))
    watch.arm(asyncio.get_running_loop(), {"lab": lab()})
    clock.at -= timedelta(minutes=5)  # stepped back
    await asyncio.sleep(0.15)
    assert seen == [] and watch.next_for("lab") is not None
    watch.stop()


async def test_a_far_boundary_is_waited_for_in_steps() -> None:
    clock = Clock(datetime(2026, 11, 28, 17, 0, tzinfo=UTC))  # a Saturday: Monday is far
    watch = BoundaryWatch(clock, lambda policy, b: None)
    loop = asyncio.get_running_loop()
    watch.arm(loop, {"lab": lab()})
    [timer] = watch._timers.values()
    assert timer.when() - loop.time() <= MAX_SLEEP + 0.1
    watch.stop()


async def test_a_frozen_clock_arms_nothing_and_ends_no_pass_early() -> None:
    watch = BoundaryWatch(Clock(datetime(2026, 11, 24, 18, 30, tzinfo=UTC)),
                          lambda policy, b: None)
    watch.arm(asyncio.get_running_loop(), {"lab": lab()}, frozen=True)
    assert watch._timers == {} and watch.window_end(lab()) is None


async def test_a_failing_boundary_handler_does_not_stop_the_watch() -> None:
    clock = Clock(datetime(2026, 11, 24, 18, 59, 59, 990_000, tzinfo=UTC))

    def broken(policy: Policy, boundary: Boundary) -> None:
        raise RuntimeError("boom")

    watch = BoundaryWatch(clock, broken)
    watch.arm(asyncio.get_running_loop(), {"lab": lab()})
    clock.at += timedelta(seconds=1)
    await asyncio.sleep(0.1)
    following = watch.next_for("lab")
    assert following is not None and following.before == "work"
    watch.stop()


def test_window_end_for_a_pass_is_the_boundary_in_monotonic_seconds() -> None:
    clock = Clock(datetime(2026, 11, 24, 18, 59, 0, tzinfo=UTC))  # 12:59 CST: a minute left
    watch = BoundaryWatch(clock, lambda policy, b: None)
    end = watch.window_end(lab())
    assert end is not None and end.when == "2026-11-24T13:00:00-06:00"
    assert end.tag == "lab 2026-11-24T13:00:00-06:00"

    assert 59 < end.at - time.monotonic() <= 60


# --------------------------------------------------------------------------- passes


def grant(passes: Passes, now: float, window_end: WindowEnd | None) -> None:
    token = passes.issue(client=CLIENT, user=None, host=KEY[1], url="http://x/", agency="lab",
                         rule="social-warn", clauses=("2",), now=now)
    assert passes.redeem(token, client=CLIENT, user=None, host=KEY[1], holder=KEY[0], now=now,
                         window_end=window_end) is not None


def has(passes: Passes, now: float) -> bool:
    return passes.has_pass(holder=KEY[0], host=KEY[1], now=now)


def test_a_pass_ends_with_its_window_when_that_comes_first() -> None:
    passes = Passes(900)
    grant(passes, 100.0, WindowEnd(160.0, "lab 13:00"))
    assert has(passes, 159.0) and not has(passes, 161.0)
    assert passes.expires(KEY) == (160.0, "lab 13:00")
    assert passes.end_window("lab 13:00") == 1 and not has(passes, 150.0)
    assert passes.end_window("lab 13:00") == 0


def test_a_pass_whose_minutes_end_first_keeps_them_and_no_window_tag() -> None:
    passes = Passes(900)
    grant(passes, 100.0, WindowEnd(5000.0, "lab 17:00"))
    assert passes.expires(KEY) == (1000.0, None)
    assert passes.end_window("lab 17:00") == 0 and has(passes, 999.0)
    grant(passes, 100.0, None)
    assert passes.expires(KEY) == (1000.0, None)


def test_a_pass_granted_again_in_a_later_window_is_not_ended_by_the_earlier_one() -> None:
    passes = Passes(900)
    grant(passes, 100.0, WindowEnd(160.0, "lab 13:00"))
    grant(passes, 170.0, WindowEnd(5000.0, "lab 17:00"))  # after lunch, a work-time pass
    assert passes.end_window("lab 13:00") == 0 and has(passes, 200.0)


def test_a_window_bound_pass_travels_between_workers_with_its_tag() -> None:
    sent: list[dict[str, object]] = []
    a, b = SharedPasses(900, sent.append), SharedPasses(900, lambda event: None)
    grant(a, 100.0, WindowEnd(160.0, "lab 13:00"))
    [event] = [e for e in sent if "pass" in e]
    assert event["expires"] == 160.0 and event["window_end"] == "lab 13:00"
    b.apply(json.loads(encode(event)), now=101.0)
    assert has(b, 159.0) and not has(b, 161.0)
    assert b.end_window("lab 13:00") == 1 and not has(b, 150.0)


# --------------------------------------------------------------------------- the test clock


def test_the_running_clock_starts_when_the_proxy_serves() -> None:
    decider = Decider()
    start = datetime(2026, 11, 24, 12, 59, 50, tzinfo=UTC)
    decider.set_clock(None, start)
    assert decider.now() == start  # not serving yet: the clock waits
    decider.start_clock()
    later = decider.now()
    assert start <= later < start + timedelta(seconds=5)
    assert not decider.clock_frozen
    with pytest.raises(ValueError, match="exclude"):
        decider.set_clock(start, start)
    decider.set_clock(start, None)
    assert decider.clock_frozen and decider.now() == start


def test_boundary_tags_name_the_agency_and_the_instant() -> None:
    b = Boundary(datetime(2026, 11, 24, 13, 0, tzinfo=UTC), "lunch", "work", "window")
    assert window_tag("lab", b) == "lab 2026-11-24T13:00:00+00:00"


# --------------------------------------------------------------------------- what is open


def decision(action: str, host: str = "radio.example") -> Decision:
    return Decision(action, "lab", "r", (), "", "rule", "work", (), (), None,  # type: ignore[arg-type]
                    host, f"http://{host}/")


def test_open_websockets_are_remembered_with_whose_pass_until_they_end() -> None:
    records: FlowRecords = weakref.WeakKeyDictionary()
    edge = Boundaries(Decider(), WarnFlow(), lambda: AuditLog([io.StringIO()]), records, {})
    socket_flow = tflow.twebsocketflow()
    record = FlowRecord(Identity(None, None, None), decision("allow"), "passed")
    record.holder = "browser:abc"
    edge.response(socket_flow, record)
    edge.response(tflow.tflow(resp=True), None)  # a plain response: nothing stays open after it
    assert edge.websockets == {socket_flow.id: (socket_flow, record.decision, "browser:abc")}
    edge.websocket_end(socket_flow)
    assert edge.websockets == {}


def test_a_warned_flow_stays_open_only_under_its_own_holders_pass() -> None:
    warn = WarnFlow()
    token = warn.passes.issue(client=CLIENT, user=None, host="radio.example", url="http://x/",
                              agency="lab", rule="r", clauses=(), now=time.monotonic())
    assert warn.passes.redeem(token, client=CLIENT, user=None, host="radio.example",
                              holder="browser:mine", now=time.monotonic()) is not None
    room = Room(Decider(), warn, AuditLog([io.StringIO()]), {}, {}, {})
    ident = Identity(None, None, None)
    assert not _stops(room, ident, decision("warn"), "browser:mine")
    assert _stops(room, ident, decision("warn"), "browser:someone-else")
    assert _stops(room, ident, decision("warn"), None)  # no login, no cookie: no pass
    assert _stops(room, ident, decision("block"), "browser:mine")  # a pass never covers a block
    assert not _stops(room, ident, decision("allow"), None)
