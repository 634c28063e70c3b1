"""The next instant an agency's decisions may change by themselves: a window boundary (the
schedule) or the end of a grant's last day. Pure: instants in, instants out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate.policy.boundaries import next_boundary
from aupgate.policy.loader import load_policy
from aupgate.policy.model import Grant
from aupgate.policy.schedule import Schedule, parse_interval

LAB = Path(__file__).parent / "e2e" / "fixtures" / "policies" / "lab.yaml"
CHICAGO = ZoneInfo("America/Chicago")


def make_schedule(
    *,
    work_days: frozenset[int] = frozenset(range(5)),
    work_hours: str = "08:00-17:00",
    lunch: str | None = "12:00-13:00",
    breaks: tuple[str, ...] = ("10:00-10:15", "15:00-15:15"),
    holidays: frozenset[date] = frozenset({date(2026, 11, 26), date(2026, 12, 25)}),
) -> Schedule:
    """The schedule of docs/policy-language.md (as tests/test_schedule.py), any part replaced."""
    return Schedule(
        timezone=CHICAGO, work_days=work_days, work_hours=parse_interval(work_hours),
        lunch=parse_interval(lunch) if lunch else None,
        breaks=tuple(parse_interval(b) for b in breaks), holidays=holidays)


SCHEDULE = make_schedule()


def local(text: str, zone: ZoneInfo = CHICAGO) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("now", "boundary", "before", "after"),
    [
        ("2026-11-24 12:59:00", "2026-11-24 13:00", "lunch", "work"),  # lunch -> work
        ("2026-11-24 12:59:59.999", "2026-11-24 13:00", "lunch", "work"),
        ("2026-11-24 13:00:00", "2026-11-24 15:00", "work", "break"),  # at the edge: the next
        ("2026-11-24 07:30", "2026-11-24 08:00", "before-work", "work"),
        ("2026-11-24 09:00", "2026-11-24 10:00", "work", "break"),
        ("2026-11-24 10:10", "2026-11-24 10:15", "break", "work"),
        ("2026-11-24 16:00", "2026-11-24 17:00", "work", "after-work"),
        ("2026-11-24 18:00", "2026-11-25 00:00", "after-work", "before-work"),
        ("2026-11-25 18:00", "2026-11-26 00:00", "after-work", "holiday"),  # Thanksgiving
        ("2026-11-26 09:00", "2026-11-27 00:00", "holiday", "before-work"),
        ("2026-11-27 20:00", "2026-11-28 00:00", "after-work", "weekend"),  # Friday night
        ("2026-11-28 11:00", "2026-11-30 00:00", "weekend", "before-work"),  # Saturday: Monday
    ],
)
def test_next_change_of_the_working_day(now: str, boundary: str, before: str,
                                        after: str) -> None:
    at = SCHEDULE.next_change(local(now))
    assert at == local(boundary)
    assert SCHEDULE.window_at(local(now)) == before and SCHEDULE.window_at(at) == after
    assert SCHEDULE.window_at(at - timedelta(microseconds=1)) == before


def test_next_change_answers_in_the_agency_zone_for_any_zone_given() -> None:
    """The proxy's clock is UTC: 18:59 UTC is 12:59 in Chicago (CST, UTC-6)."""
    at = SCHEDULE.next_change(datetime(2026, 11, 24, 18, 59, tzinfo=UTC))
    assert at is not None and at.tzinfo == CHICAGO
    assert at == datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_a_window_that_never_changes_has_no_next_change() -> None:
    always = make_schedule(work_days=frozenset(), holidays=frozenset())  # weekend for ever
    assert always.next_change(local("2026-11-24 12:00")) is None
    whole_day = make_schedule(work_days=frozenset(range(7)), work_hours="00:00-24:00",
                              lunch=None, breaks=(), holidays=frozenset())
    assert whole_day.next_change(local("2026-11-24 12:00")) is None


def test_a_daylight_saving_jump_over_an_edge_moves_the_boundary_to_the_jump() -> None:
    """On 2027-03-14 Chicago's clocks jump from 02:00 to 03:00: a working day starting at 02:30
    starts at the jump (08:00 UTC), not at 02:30 read with the old offset (08:30 UTC)."""
    night_shift = make_schedule(work_days=frozenset(range(7)), work_hours="02:30-10:00",
                                lunch=None, breaks=(), holidays=frozenset())
    at = night_shift.next_change(local("2027-03-14 01:00"))
    assert at == datetime(2027, 3, 14, 8, 0, tzinfo=UTC)
    assert night_shift.window_at(at) == "work"
    assert night_shift.window_at(at.astimezone(UTC) - timedelta(seconds=1)) == "before-work"


def test_a_daylight_saving_fall_back_keeps_the_edge_on_local_time() -> None:
    """2026-11-01: 01:00-02:00 happens twice in Chicago; 08:00 is still 08:00 local (CST)."""
    at = SCHEDULE.next_change(local("2026-11-01 00:30"))  # a Sunday: weekend until Monday
    assert at == local("2026-11-02 00:00")
    assert SCHEDULE.next_change(local("2026-11-02 07:00")) == datetime(2026, 11, 2, 14, 0,
                                                                       tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31),
                    timezones=st.just(UTC)))
def test_nothing_changes_before_the_boundary_and_it_changes_at_it(now: datetime) -> None:
    """Property: the window is constant on [now, boundary) (sampled minute by minute, to at most
    a day), and differs at the boundary."""
    at = SCHEDULE.next_change(now)
    assert at is not None and at > now
    current = SCHEDULE.window_at(now)
    assert SCHEDULE.window_at(at) != current
    probe = now
    step = timedelta(minutes=1)
    while probe < at and probe < now + timedelta(days=1):
        assert SCHEDULE.window_at(probe) == current, probe
        probe += step
    assert SCHEDULE.window_at(at - timedelta(microseconds=1)) == current


# --------------------------------------------------------------------------- policies


def lab() -> object:
    policy, problems = load_policy(LAB, today=date(2026, 11, 24))
    assert policy is not None, problems
    return policy


def test_next_boundary_of_a_policy_is_its_schedule_window_change() -> None:
    policy = lab()
    found = next_boundary(policy, local("2026-11-24 12:59:30"))  # type: ignore[arg-type]
    assert found is not None
    assert (found.at, found.before, found.after, found.why) == (
        local("2026-11-24 13:00"), "lunch", "work", "window")


def test_a_grant_ending_before_the_window_changes_is_a_boundary() -> None:
    """A grant's last day ends at the agency's midnight: on a Saturday the window stays
    `weekend`, but decisions the grant relaxed change then."""
    policy = lab()
    grant = Grant("g1", frozenset({"no-gambling"}), frozenset({"alice"}), frozenset(), "allow",
                  "CIO", "audit", date(2026, 11, 28))
    with_grant = dataclasses.replace(policy, grants=(grant,))  # type: ignore[type-var]
    found = next_boundary(with_grant, local("2026-11-28 10:00"))
    assert found is not None
    assert (found.at, found.before, found.after, found.why) == (
        local("2026-11-29 00:00"), "weekend", "weekend", "grant")
    past = dataclasses.replace(grant, expires=date(2026, 11, 1))
    found = next_boundary(dataclasses.replace(policy, grants=(past,)),  # type: ignore[type-var]
                          local("2026-11-28 10:00"))
    assert found is not None and found.why == "window" and found.at == local("2026-11-30 00:00")
