"""The `timezone` and `schedule` sections: the working week and the windows rules may name."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aupgate.yamlsource import FieldReader, keys_of, kind_of

from ..schedule import ANY, DAY_NAMES, WINDOWS, Interval, Schedule, parse_interval
from .holidays import read_holidays

__all__ = ["read_schedule", "window_set_names"]

_SCHEDULE_KEYS = ("work_days", "work_hours", "lunch", "breaks", "holidays", "window_sets")


def read_schedule(reader: FieldReader, top: dict[str, Any], today: date) -> Schedule | None:
    """The working week; `today` tells whether listed holidays are running out (a warning)."""
    zone_name = reader.string(top, "timezone", "")
    zone: ZoneInfo | None = None
    if zone_name is not None:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem(top, "timezone", "timezone", f"unknown time zone '{zone_name}'")
    sched = reader.mapping(top, "schedule", "schedule", _SCHEDULE_KEYS, ("work_days", "work_hours"))
    if sched is None:
        return None
    days = reader.choices(sched, "work_days", "schedule", DAY_NAMES, "day")
    hours = _interval(reader, sched, "work_hours", "schedule.work_hours", sched.get("work_hours"))
    lunch = _interval(reader, sched, "lunch", "schedule.lunch", sched.get("lunch"))
    breaks: list[tuple[int, Interval]] = []  # (index in the file, interval)
    for i, text in reader.strings(sched, "breaks", "schedule"):
        interval = _interval(reader, sched["breaks"], i, f"schedule.breaks[{i}]", text)
        if interval is not None:
            breaks.append((i, interval))
    holidays = read_holidays(reader, sched, today)
    if hours is not None:
        _check_day_shape(reader, sched, hours, lunch, breaks)
    sets = _read_window_sets(reader, sched)
    if zone is None or days is None or hours is None:
        return None
    return Schedule(
        timezone=zone,
        work_days=frozenset(DAY_NAMES.index(d) for d in days),
        work_hours=hours,
        lunch=lunch,
        breaks=tuple(sorted((b for _, b in breaks), key=lambda b: b.start)),
        holidays=holidays,
        window_sets=sets,
    )


def _interval(
    reader: FieldReader, parent: object, key: str | int, field: str, value: object
) -> Interval | None:
    if value is None:
        return None
    if not isinstance(value, str):
        reader.problem(parent, key, field, f"expected HH:MM-HH:MM, got {kind_of(value)}")
        return None
    try:
        return parse_interval(value)
    except ValueError as exc:
        reader.problem(parent, key, field, str(exc))
        return None


def _check_day_shape(
    reader: FieldReader,
    sched: dict[str, Any],
    hours: Interval,
    lunch: Interval | None,
    breaks: list[tuple[int, Interval]],
) -> None:
    """Lunch and breaks must sit inside work hours and never overlap one another."""
    named: list[tuple[str, object, str | int, Interval]] = []
    if lunch is not None:
        named.append(("schedule.lunch", sched, "lunch", lunch))
    named += [(f"schedule.breaks[{i}]", sched["breaks"], i, b) for i, b in breaks]
    for where, parent, key, interval in named:
        if not interval.within(hours):
            reader.problem(parent, key, where, f"{interval} is not inside work_hours {hours}")
    for i, (field_a, _pa, _ka, a) in enumerate(named):
        for field_b, parent_b, key_b, b in named[i + 1 :]:
            if a.overlaps(b):
                reader.problem(parent_b, key_b, field_b, f"{b} overlaps {field_a} {a}")


def _read_window_sets(reader: FieldReader, sched: dict[str, Any]) -> dict[str, frozenset[str]]:
    sets_raw = reader.mapping(
        sched, "window_sets", "schedule.window_sets", keys_of(sched.get("window_sets"))
    )
    sets: dict[str, frozenset[str]] = {}
    if sets_raw is None:
        return sets
    for name in sets_raw:
        field = f"schedule.window_sets.{name}"
        if name in WINDOWS or name == ANY:
            reader.problem(
                sets_raw, name, field, f"'{name}' is a window name and cannot name a set"
            )
            continue
        chosen = reader.choices(sets_raw, name, "schedule.window_sets", WINDOWS, "window")
        sets[name] = chosen or frozenset()
    return sets


def window_set_names(top: Mapping[str, Any]) -> tuple[str, ...]:
    sched = top.get("schedule")
    return keys_of(sched.get("window_sets")) if isinstance(sched, dict) else ()
