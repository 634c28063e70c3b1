"""The working day, and which time window a moment falls in.

The documents speak in windows ("before work, after work, or during lunch break", "during breaks
and lunch during the work day"), so the schedule answers one question: for this instant, in the
agency's time zone, which window is it? Every instant falls in exactly one window, which keeps the
audit log and the block page unambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aupgate.memo import remember

from .holidaycalendar import HolidayCalendar

WINDOWS: tuple[str, ...] = (
    "work",
    "lunch",
    "break",
    "before-work",
    "after-work",
    "weekend",
    "holiday",
)
"""The concrete windows; `docs/policy-language.md` defines each."""

ANY = "any"
HORIZON_DAYS = 400
"""How far ahead `Schedule.next_change` looks: past a year, a holiday list has repeated."""
_MINUTE = timedelta(minutes=1)
_DST_STEPS = 180  # minutes a time-zone jump can move a boundary (the largest shift is 2 hours)
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Interval:
    """A daily interval in minutes since midnight, start inclusive and end exclusive."""

    start: int
    end: int

    def __contains__(self, minute: object) -> bool:
        return isinstance(minute, int) and self.start <= minute < self.end

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def within(self, other: Interval) -> bool:
        return other.start <= self.start and self.end <= other.end

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


def parse_moment(text: str) -> datetime:
    """An instant as administrators write it: ISO-8601, `Z` allowed; without an offset it is
    agency-local (`Schedule.local`). Raises ValueError saying what was wrong."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"'{text}' is not an ISO-8601 time ({exc})") from exc


def parse_interval(text: str) -> Interval:
    """Parse `HH:MM-HH:MM`; raises ValueError with a message fit for an administrator."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"expected HH:MM-HH:MM, got {text!r}")
    start, end = (_parse_minute(part.strip(), text) for part in parts)
    if end <= start:
        raise ValueError(f"interval {text!r} ends before it starts")
    return Interval(start, end)


def _parse_minute(text: str, whole: str) -> int:
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected HH:MM-HH:MM, got {whole!r}")
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return 24 * 60
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"no such time of day {text!r} in {whole!r}")
    return h * 60 + m


@dataclass(frozen=True, slots=True)
class Schedule:
    """An agency's working week in its own time zone."""

    timezone: ZoneInfo
    work_days: frozenset[int]  # 0 = Monday, as date.weekday()
    work_hours: Interval
    lunch: Interval | None = None
    breaks: tuple[Interval, ...] = ()
    holidays: HolidayCalendar = field(default_factory=HolidayCalendar)
    window_sets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Windows change at most once a minute, and a proxy asks for the same minute thousands of
    # times; converting time zones for each request would dominate the decision cost.
    _by_minute: dict[int, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    def local(self, now: datetime) -> datetime:
        """`now` in the agency's zone; a naive time is taken to be agency-local already."""
        if now.tzinfo is None:
            return now.replace(tzinfo=self.timezone)
        return now.astimezone(self.timezone)

    def window_at(self, now: datetime) -> str:
        """The one window `now` falls in."""
        if now.tzinfo is None:
            return self._window_local(self.local(now))
        key = int(now.timestamp()) // 60
        cached = self._by_minute.get(key)
        if cached is None:
            local = self._window_local(now.astimezone(self.timezone))
            cached = remember(self._by_minute, key, local, _CACHE_LIMIT)
        return cached

    def _window_local(self, local: datetime) -> str:
        if local.date() in self.holidays:
            return "holiday"
        if local.weekday() not in self.work_days:
            return "weekend"
        minute = local.hour * 60 + local.minute
        if minute < self.work_hours.start:
            return "before-work"
        if minute >= self.work_hours.end:
            return "after-work"
        if self.lunch is not None and minute in self.lunch:
            return "lunch"
        if any(minute in interval for interval in self.breaks):
            return "break"
        return "work"

    def next_change(self, now: datetime) -> datetime | None:
        """The first instant after `now` whose window is not `now`'s (on a whole local minute,
        in the agency's zone); None when the window never changes within `HORIZON_DAYS`.

        Windows change only where the local clock crosses an edge of the working day (its start
        and end, lunch, breaks) or midnight (a workday, weekend or holiday begins), so only those
        instants are tried, in time order. Where a daylight-saving jump skips the local minute of
        an edge, the window changes at the jump: the instant found is walked back minute by
        minute to the first one in the new window.
        """
        local = self.local(now)
        current = self._window_local(local)
        if len(self.possible_windows()) < 2:
            return None
        edges = {0, self.work_hours.start, self.work_hours.end}
        if self.lunch is not None:
            edges |= {self.lunch.start, self.lunch.end}
        for interval in self.breaks:
            edges |= {interval.start, interval.end}
        minutes = sorted(m for m in edges if m < 24 * 60)
        for offset in range(HORIZON_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            instants = sorted(
                datetime.combine(day, time(m // 60, m % 60), tzinfo=self.timezone)
                for m in minutes)
            for instant in instants:
                if instant > local and self._window_local(
                        instant.astimezone(self.timezone)) != current:
                    return self._first_minute_after(local, instant, current)
        return None

    def _first_minute_after(self, local: datetime, found: datetime, current: str) -> datetime:
        """Walk `found` back while the minute before it is already out of `current`."""
        at = found.astimezone(UTC)  # instants: arithmetic on a zoned time is wall-clock time
        for _ in range(_DST_STEPS):
            before = at - _MINUTE
            if before <= local or self._window_local(before.astimezone(self.timezone)) == current:
                break
            at = before
        return at.astimezone(self.timezone)

    def resolve(self, names: Iterable[str]) -> frozenset[str]:
        """Expand window and window-set names into concrete windows."""
        resolved: set[str] = set()
        for name in names:
            if name == ANY:
                resolved.update(WINDOWS)
            elif name in self.window_sets:
                resolved |= self.window_sets[name]
            else:
                resolved.add(name)
        return frozenset(resolved)

    def possible_windows(self) -> frozenset[str]:
        """The windows that can occur under this schedule; a rule naming only others is dead."""
        possible = {"work"}
        if self.work_hours.start > 0:
            possible.add("before-work")
        if self.work_hours.end < 24 * 60:
            possible.add("after-work")
        if self.lunch is not None:
            possible.add("lunch")
        if self.breaks:
            possible.add("break")
        if len(self.work_days) < 7:
            possible.add("weekend")
        if self.holidays:
            possible.add("holiday")
        if not self.work_days:
            possible.intersection_update({"weekend", "holiday"})
        return frozenset(possible)
