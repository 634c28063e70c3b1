"""Time windows: every instant falls in exactly one window, worked out in the agency's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aupgate.policy.schedule import WINDOWS, Interval, Schedule, parse_interval

CHICAGO = ZoneInfo("America/Chicago")
WEEKDAYS = frozenset(range(5))
PERSONAL_TIME = frozenset({"before-work", "lunch", "after-work", "weekend", "holiday"})


def make_schedule(
    *,
    work_days: frozenset[int] = WEEKDAYS,
    work_hours: str = "08:00-17:00",
    lunch: str | None = "12:00-13:00",
    breaks: tuple[str, ...] = ("10:00-10:15", "15:00-15:15"),
    holidays: frozenset[date] = frozenset({date(2026, 11, 26), date(2026, 12, 25)}),
) -> Schedule:
    """The schedule of docs/policy-language.md, with any part replaced."""
    return Schedule(
        timezone=CHICAGO,
        work_days=work_days,
        work_hours=parse_interval(work_hours),
        lunch=parse_interval(lunch) if lunch else None,
        breaks=tuple(parse_interval(b) for b in breaks),
        holidays=holidays,
        window_sets={"personal-time": PERSONAL_TIME},
    )


SCHEDULE = make_schedule()


def utc(text: str) -> datetime:
    """An aware UTC instant from `YYYY-MM-DD HH:MM[:SS]`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("local", "window"),
    [
        ("2026-11-23 00:00", "before-work"),
        ("2026-11-23 07:59", "before-work"),
        ("2026-11-23 07:59:59", "before-work"),
        ("2026-11-23 08:00", "work"),
        ("2026-11-23 09:59", "work"),
        ("2026-11-23 10:00", "break"),
        ("2026-11-23 10:14", "break"),
        ("2026-11-23 10:15", "work"),
        ("2026-11-23 11:59", "work"),
        ("2026-11-23 12:00", "lunch"),
        ("2026-11-23 12:59", "lunch"),
        ("2026-11-23 12:59:59", "lunch"),
        ("2026-11-23 13:00", "work"),
        ("2026-11-23 14:59", "work"),
        ("2026-11-23 15:00", "break"),
        ("2026-11-23 15:15", "work"),
        ("2026-11-23 16:59", "work"),
        ("2026-11-23 16:59:59", "work"),
        ("2026-11-23 17:00", "after-work"),
        ("2026-11-23 23:59", "after-work"),
        ("2026-11-27 08:00", "work"),  # Friday is a work day
        ("2026-11-28 10:00", "weekend"),  # Saturday
        ("2026-11-29 12:30", "weekend"),  # Sunday, at what would be lunch
        ("2026-11-26 00:00", "holiday"),  # Thanksgiving, a Thursday
        ("2026-11-26 10:00", "holiday"),  # a break time on a holiday is still the holiday
        ("2026-11-26 23:59", "holiday"),
        ("2026-12-25 12:30", "holiday"),
    ],
)
def test_window_at_boundaries(local: str, window: str) -> None:
    """Each window at its edges: start inclusive, end exclusive; holiday beats the day's hours."""
    now = datetime.fromisoformat(local).replace(tzinfo=CHICAGO)
    assert SCHEDULE.window_at(now) == window


@pytest.mark.parametrize(
    ("instant", "window"),
    [
        # March 2026: CST (UTC-6) until Sunday 8 March 02:00, then CDT (UTC-5).
        ("2026-03-06 13:59", "before-work"),  # Fri 07:59 CST
        ("2026-03-06 14:00", "work"),  # Fri 08:00 CST
        ("2026-03-06 22:59", "work"),  # Fri 16:59 CST
        ("2026-03-06 23:00", "after-work"),  # Fri 17:00 CST
        ("2026-03-09 12:59", "before-work"),  # Mon 07:59 CDT
        ("2026-03-09 13:00", "work"),  # Mon 08:00 CDT: one UTC hour earlier than the Friday
        ("2026-03-09 17:00", "lunch"),  # Mon 12:00 CDT
        ("2026-03-09 21:59", "work"),  # Mon 16:59 CDT
        ("2026-03-09 22:00", "after-work"),  # Mon 17:00 CDT
        # November 2026: CDT until Sunday 1 November 02:00, then CST again.
        ("2026-10-30 12:59", "before-work"),  # Fri 07:59 CDT
        ("2026-10-30 13:00", "work"),  # Fri 08:00 CDT
        ("2026-11-02 13:00", "before-work"),  # Mon 07:00 CST
        ("2026-11-02 13:59", "before-work"),  # Mon 07:59 CST
        ("2026-11-02 14:00", "work"),  # Mon 08:00 CST
        ("2026-11-02 18:00", "lunch"),  # Mon 12:00 CST
        ("2026-11-02 22:59", "work"),  # Mon 16:59 CST
        ("2026-11-02 23:00", "after-work"),  # Mon 17:00 CST
    ],
)
def test_window_across_dst(instant: str, window: str) -> None:
    """The work day follows Chicago's clock across the 2026 DST changes, not a fixed UTC offset."""
    assert SCHEDULE.window_at(utc(instant)) == window


@pytest.mark.parametrize(
    ("work_hours", "instant", "window"),
    [
        ("03:00-17:00", "2026-03-08 07:59", "before-work"),  # 01:59 CST, just before the jump
        ("03:00-17:00", "2026-03-08 08:00", "work"),  # 03:00 CDT, the next minute
        ("02:00-17:00", "2026-11-01 06:30", "before-work"),  # 01:30 CDT, first pass
        ("02:00-17:00", "2026-11-01 07:30", "before-work"),  # 01:30 CST, the repeated hour
        ("02:00-17:00", "2026-11-01 08:00", "work"),  # 02:00 CST
    ],
)
def test_window_on_the_dst_night(work_hours: str, instant: str, window: str) -> None:
    """On the transition night itself the skipped and repeated hours resolve by the local clock."""
    every_day = make_schedule(
        work_days=frozenset(range(7)), work_hours=work_hours, lunch=None, breaks=()
    )
    assert every_day.window_at(utc(instant)) == window


@pytest.mark.parametrize(
    ("instant", "window"),
    [
        ("2026-11-23T14:00:00+00:00", "work"),  # 08:00 CST
        ("2026-11-23T13:59:59+00:00", "before-work"),
        ("2026-11-23T15:00:00+01:00", "work"),  # Berlin 15:00 = 08:00 CST
        ("2026-11-24T03:00:00+09:00", "lunch"),  # Tokyo, the next day = 12:00 CST
        ("2026-11-23T09:00:00-05:00", "work"),  # New York 09:00 = 08:00 CST
        ("2026-11-23T07:59:00-06:00", "before-work"),
        ("2026-11-27T05:59:00+00:00", "holiday"),  # Thu 26th 23:59 CST
        ("2026-11-27T06:00:00+00:00", "before-work"),  # Fri 27th 00:00 CST
        ("2026-11-28T03:00:00+00:00", "after-work"),  # Saturday in UTC, Friday 21:00 in Chicago
        ("2026-11-30T05:59:00+00:00", "weekend"),  # Monday in UTC, Sunday 23:59 in Chicago
    ],
)
def test_aware_times_in_other_zones_are_converted(instant: str, window: str) -> None:
    """An aware time in any zone is converted to the agency's zone before choosing the window."""
    assert SCHEDULE.window_at(datetime.fromisoformat(instant)) == window


@pytest.mark.parametrize(
    ("naive", "window"),
    [
        ("2026-11-23 08:00", "work"),
        ("2026-11-23 07:59", "before-work"),
        ("2026-11-23 12:00", "lunch"),
        ("2026-11-26 09:00", "holiday"),
        ("2026-03-09 08:00", "work"),  # the first Monday of CDT
        ("2026-03-08 02:30", "weekend"),  # a wall time that never happens in Chicago
    ],
)
def test_naive_times_are_agency_local(naive: str, window: str) -> None:
    """A naive time is read as the agency's wall clock, whatever the machine's zone."""
    assert SCHEDULE.window_at(datetime.fromisoformat(naive)) == window
    assert SCHEDULE.local(datetime.fromisoformat(naive)).tzinfo is CHICAGO


def test_local_converts_aware_times() -> None:
    """`local` gives the same instant on the agency's clock."""
    local = SCHEDULE.local(utc("2026-11-23 14:00"))
    assert (local.hour, local.minute, local.utcoffset()) == (8, 0, timedelta(hours=-6))


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    )
)
def test_cached_window_equals_wall_clock_window(now: datetime) -> None:
    """The per-minute cache of aware times never disagrees with the local wall clock."""
    wall = now.astimezone(CHICAGO).replace(tzinfo=None)
    assert SCHEDULE.window_at(now) == SCHEDULE.window_at(wall)
    assert SCHEDULE.window_at(now) in WINDOWS


def test_cache_overflow_keeps_answers_right() -> None:
    """Asking for more distinct minutes than the cache holds still gives the right windows."""
    schedule = make_schedule()
    start = utc("2026-11-23 06:00")  # Monday 00:00 CST
    for minute in range(6000):
        now = start + timedelta(minutes=minute)
        local = now.astimezone(CHICAGO).replace(tzinfo=None)
        assert schedule.window_at(now) == schedule.window_at(local)


# --------------------------------------------------------------------------- sets


@pytest.mark.parametrize(
    ("names", "resolved"),
    [
        (["lunch"], {"lunch"}),
        (["lunch", "break"], {"lunch", "break"}),
        (["personal-time"], set(PERSONAL_TIME)),
        (["personal-time", "break"], {*PERSONAL_TIME, "break"}),
        (["personal-time", "lunch"], set(PERSONAL_TIME)),
        (["any"], set(WINDOWS)),
        (["any", "lunch"], set(WINDOWS)),
        ([], set()),
    ],
)
def test_resolve_window_sets_and_any(names: list[str], resolved: set[str]) -> None:
    """Window sets expand to their windows and `any` to all seven."""
    assert SCHEDULE.resolve(names) == frozenset(resolved)


ALL = set(WINDOWS)


@pytest.mark.parametrize(
    ("schedule", "possible"),
    [
        (SCHEDULE, ALL),
        (
            make_schedule(lunch=None, breaks=(), holidays=frozenset()),
            {"work", "before-work", "after-work", "weekend"},
        ),
        (make_schedule(work_days=frozenset(range(7))), ALL - {"weekend"}),
        (
            make_schedule(work_hours="00:00-24:00", lunch=None, breaks=()),
            {"work", "weekend", "holiday"},
        ),
        (make_schedule(work_hours="00:00-17:00"), ALL - {"before-work"}),
        (make_schedule(work_hours="08:00-24:00"), ALL - {"after-work"}),
        (make_schedule(holidays=frozenset()), ALL - {"holiday"}),
        (make_schedule(work_days=frozenset(), lunch=None, breaks=()), {"weekend", "holiday"}),
    ],
)
def test_possible_windows(schedule: Schedule, possible: set[str]) -> None:
    """Only windows the schedule can produce are possible; a rule naming only others is dead."""
    assert schedule.possible_windows() == frozenset(possible)


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("08:00-17:00", Interval(480, 1020)),
        ("00:00-24:00", Interval(0, 1440)),
        ("8:00-9:30", Interval(480, 570)),
        (" 10:00 - 10:15 ", Interval(600, 615)),
        ("23:59-24:00", Interval(1439, 1440)),
    ],
)
def test_parse_interval(text: str, interval: Interval) -> None:
    """`HH:MM-HH:MM` in minutes since midnight; 24:00 is the end of the day."""
    assert parse_interval(text) == interval


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("08:00", "expected HH:MM-HH:MM, got '08:00'"),
        ("8-17", "expected HH:MM-HH:MM, got '8-17'"),
        ("08:00-17:00-18:00", "expected HH:MM-HH:MM, got '08:00-17:00-18:00'"),
        ("08:0-17:00", "expected HH:MM-HH:MM, got '08:0-17:00'"),
        ("ab:cd-17:00", "expected HH:MM-HH:MM, got 'ab:cd-17:00'"),
        ("", "expected HH:MM-HH:MM, got ''"),
        ("17:00-08:00", "interval '17:00-08:00' ends before it starts"),
        ("08:00-08:00", "interval '08:00-08:00' ends before it starts"),
        ("25:00-26:00", "no such time of day '25:00' in '25:00-26:00'"),
        ("08:60-09:00", "no such time of day '08:60' in '08:60-09:00'"),
        ("08:00-24:30", "no such time of day '24:30' in '08:00-24:30'"),
    ],
)
def test_parse_interval_errors(text: str, message: str) -> None:
    """A bad interval raises ValueError with a message an administrator can act on."""
    with pytest.raises(ValueError) as caught:
        parse_interval(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("a", "b", "overlaps", "within"),
    [
        ("12:00-13:00", "12:59-13:30", True, False),
        ("12:00-13:00", "13:00-13:15", False, False),  # end exclusive: touching is no overlap
        ("10:00-10:15", "08:00-17:00", True, True),
        ("07:45-08:15", "08:00-17:00", True, False),
    ],
)
def test_interval_overlap_and_within(a: str, b: str, overlaps: bool, within: bool) -> None:
    """Touching intervals do not overlap; `within` needs both ends inside."""
    first, second = parse_interval(a), parse_interval(b)
    assert first.overlaps(second) is overlaps
    assert second.overlaps(first) is overlaps
    assert first.within(second) is within
    assert str(first) == a
