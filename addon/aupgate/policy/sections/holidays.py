"""`schedule.holidays`: a list of dates, or holidays by rule (a country's and state's public
holidays from the `holidays` library, with the agency's additions, removals and one-off days)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from aupgate.errors import did_you_mean
from aupgate.yamlsource import FieldReader, kind_of

from ..holidaycalendar import HolidayCalendar, Recurring, categories_of, parse_recurring, supported

__all__ = ["read_holidays"]

_KEYS = ("calendar", "observed", "categories", "add", "remove", "dates")
_ADD_KEYS = ("name", "when", "observed")
_FIELD = "schedule.holidays"
_RUNNING_OUT = timedelta(days=365)
"""`check` warns when listed dates end within this span of today."""


def read_holidays(reader: FieldReader, sched: Mapping[str, Any], today: date) -> HolidayCalendar:
    value = sched.get("holidays")
    if value is None:
        return HolidayCalendar()
    if isinstance(value, list):
        dates = _dates(reader, sched, "holidays", _FIELD)
        _warn_if_running_out(reader, sched, dates, today)
        return HolidayCalendar.of_dates(dates)
    if not isinstance(value, dict):
        reader.problem(sched, "holidays", _FIELD,
                       f"expected a list of dates or a mapping (calendar, add, remove, dates), "
                       f"got {kind_of(value)}")
        return HolidayCalendar()
    item = reader.mapping(sched, "holidays", _FIELD, _KEYS)
    assert item is not None
    dates = _dates(reader, item, "dates", f"{_FIELD}.dates") if "dates" in item else frozenset()
    if "calendar" not in item:
        for key in ("observed", "categories", "add", "remove"):
            if key in item:
                reader.problem(item, key, f"{_FIELD}.{key}", "needs a calendar (e.g. US-MO)")
        _warn_if_running_out(reader, item, dates, today)
        return HolidayCalendar.of_dates(dates)
    country, subdivision = _jurisdiction(reader, item)
    observed = item.get("observed", True)
    if not isinstance(observed, bool):
        reader.problem(item, "observed", f"{_FIELD}.observed",
                       f"expected true or false, got {observed!r}")
        observed = True
    categories: tuple[str, ...] = ("public",)
    if country is not None and "categories" in item:
        known = categories_of(country)
        chosen = reader.choices(item, "categories", _FIELD, known, "holiday category")
        categories = tuple(sorted(chosen)) if chosen else categories
    additions = _additions(reader, item, observed)
    if country is None:
        return HolidayCalendar.of_dates(dates)
    calendar = HolidayCalendar(country, subdivision, observed, categories, additions,
                               dates=dates)
    names, removed_dates = _removals(reader, item, calendar, today)
    return HolidayCalendar(country, subdivision, observed, categories, additions,
                           frozenset(names), dates, frozenset(removed_dates))


def _dates(reader: FieldReader, parent: Mapping[str, Any], key: str,
           field: str) -> frozenset[date]:
    value = parent.get(key)
    if not isinstance(value, list):
        reader.problem(parent, key, field, f"expected a list of dates, got {kind_of(value)}")
        return frozenset()
    found: set[date] = set()
    for i, item in enumerate(value):
        day = reader.day(value, i, f"{field}[{i}]", item)
        if day is None:
            continue
        if day in found:
            reader.problem(value, i, f"{field}[{i}]", f"{day} is listed twice")
        found.add(day)
    return frozenset(found)


def _warn_if_running_out(reader: FieldReader, parent: Mapping[str, Any],
                         dates: frozenset[date], today: date) -> None:
    """Listed dates end: from the day after the last one, every holiday is a work day."""
    if not dates:
        return
    last = max(dates)
    if last < today + _RUNNING_OUT:
        ended = "ended" if last < today else "end"
        reader.problem(parent, "holidays" if "holidays" in parent else "dates", _FIELD,
                       f"the listed holidays {ended} on {last}: after it no day is a holiday. "
                       "Give a calendar (holidays by rule, e.g. calendar: US-MO) or list the "
                       "next year's dates", "warning")


def _jurisdiction(reader: FieldReader, item: Mapping[str, Any]) -> tuple[str | None, str | None]:
    text = reader.string(item, "calendar", _FIELD)
    if text is None:
        return None, None
    country, _, subdivision = text.strip().upper().partition("-")
    known = supported()
    if country not in known:
        reader.problem(item, "calendar", f"{_FIELD}.calendar",
                       f"unknown country '{country}'{did_you_mean(country, known)} (ISO 3166 "
                       "code, optionally with a subdivision: US-MO)")
        return None, None
    if subdivision and subdivision not in known[country]:
        reader.problem(item, "calendar", f"{_FIELD}.calendar",
                       f"unknown subdivision '{subdivision}' of {country}"
                       f"{did_you_mean(subdivision, known[country])}")
        return None, None
    return country, subdivision or None


def _additions(reader: FieldReader, item: Mapping[str, Any],
               observed: bool) -> tuple[Recurring, ...]:
    found: list[Recurring] = []
    for i, _ in enumerate(reader.sequence(item, "add", f"{_FIELD}.add")):
        field = f"{_FIELD}.add[{i}]"
        entry = reader.mapping(item["add"], i, field, _ADD_KEYS, ("name", "when"))
        if entry is None:
            continue
        name = reader.string(entry, "name", field)
        rule = reader.string(entry, "when", field)
        keep = entry.get("observed", observed)
        if not isinstance(keep, bool):
            reader.problem(entry, "observed", f"{field}.observed",
                           f"expected true or false, got {keep!r}")
            continue
        if name is None or rule is None:
            continue
        try:
            found.append(parse_recurring(name, rule, keep))
        except ValueError as exc:
            reader.problem(entry, "when", f"{field}.when", str(exc))
    return tuple(found)


def _removals(reader: FieldReader, item: Mapping[str, Any], calendar: HolidayCalendar,
              today: date) -> tuple[set[str], set[date]]:
    """Holidays the agency does not keep: a name the calendar gives (its observed day goes
    too), or one date."""
    names: set[str] = set()
    days: set[date] = set()
    raw = item.get("remove")
    if raw is None:
        return names, days
    if not isinstance(raw, list):
        reader.problem(item, "remove", f"{_FIELD}.remove",
                       f"expected a list of holiday names or dates, got {kind_of(raw)}")
        return names, days
    known = calendar.names_known(range(today.year - 1, today.year + 3))
    for i, entry in enumerate(raw):
        field = f"{_FIELD}.remove[{i}]"
        if isinstance(entry, date) or (isinstance(entry, str) and entry[:1].isdigit()):
            day = reader.day(raw, i, field, entry)
            if day is not None:
                days.add(day)
            continue
        if not isinstance(entry, str) or not entry.strip():
            reader.problem(raw, i, field, f"expected a holiday name or a date, got "
                           f"{kind_of(entry)}")
            continue
        name = entry.strip().lower()
        if name not in known:
            where = "-".join(p for p in (calendar.country, calendar.subdivision) if p)
            reader.problem(raw, i, field, f"{where} has no holiday named '{entry}'"
                           f"{did_you_mean(name, sorted(known))}")
            continue
        names.add(name)
    return names, days
