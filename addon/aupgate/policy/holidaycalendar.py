"""Holidays by rule: a country's (and state's) public holidays from the `holidays` library, with
the agency's own additions and removals, worked out for whatever year a date falls in.

Hand-written dates run out (the shipped policies once listed 2026 and 2027 only, and from 2028
every holiday would have been a work day). A calendar here names the jurisdiction (`US-MO`,
`US-MN`), whether a holiday that falls on a weekend is also kept on its observed weekday, and
what the agency does differently: a state holiday the library leaves out (Missouri's Lincoln's
Birthday), a day the agency adds (Saint Paul's day after Thanksgiving), a holiday it does not
keep, and one-off days (a day the Governor proclaims).

Nothing here reads the clock: a year's holidays are computed the first time a date in that year
is asked about, and remembered.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import holidays

__all__ = ["HolidayCalendar", "Recurring", "parse_recurring", "supported"]

_MONTHS = tuple(name.lower() for name in calendar.month_abbr)  # ("", "jan", ...)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NTH = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "last": -1}
_FIXED = re.compile(r"^(?P<month>[a-z]{3})[a-z]*\s+(?P<day>\d{1,2})$")
_NTH_DAY = re.compile(r"^(?P<nth>1st|2nd|3rd|4th|5th|last)\s+(?P<weekday>[a-z]{3})[a-z]*\s+of\s+"
                      r"(?P<month>[a-z]{3})[a-z]*$")
_OFFSET = re.compile(r"^(?P<base>.*?)\s*(?P<sign>[+-])\s*(?P<days>\d{1,3})(\s+days?)?$")


@dataclass(frozen=True, slots=True)
class Recurring:
    """A holiday on a rule, every year: a fixed day (`feb 12`) or the nth weekday of a month
    (`4th thu of nov`), moved by `offset` days (`+ 1`: the day after Thanksgiving)."""

    name: str
    month: int
    day: int = 0  # a fixed day of the month, or 0
    weekday: int = 0  # 0 = Monday, for the nth-weekday form
    nth: int = 0  # 1..5, or -1 for the last; 0 for the fixed form
    offset: int = 0
    observed: bool = True  # a fixed day on a weekend is also kept on its observed weekday

    def dates_in(self, year: int) -> list[date]:
        """The day (and its observed day) in `year`; none when the rule has no such day."""
        if self.nth == 0:
            try:
                base = date(year, self.month, self.day)
            except ValueError:  # Feb 29 in a common year
                return []
        else:
            days = [d for d in range(1, calendar.monthrange(year, self.month)[1] + 1)
                    if date(year, self.month, d).weekday() == self.weekday]
            if self.nth > len(days):
                return []
            base = date(year, self.month, days[self.nth - 1 if self.nth > 0 else -1])
        day = base + timedelta(days=self.offset)
        found = [day]
        if self.observed and self.nth == 0:
            # The US rule (5 U.S.C. 6103(b)), which Missouri and Minnesota follow too.
            if day.weekday() == 5:
                found.append(day - timedelta(days=1))
            elif day.weekday() == 6:
                found.append(day + timedelta(days=1))
        return found


def parse_recurring(name: str, text: str, observed: bool = True) -> Recurring:
    """`feb 12`, `4th thu of nov`, `last mon of may`, each optionally `+ N` / `- N` (days).
    Raises ValueError with what was wrong."""
    spec = " ".join(text.lower().split())
    offset = 0
    moved = _OFFSET.match(spec)
    if moved:
        spec = moved.group("base")
        offset = int(moved.group("days")) * (1 if moved.group("sign") == "+" else -1)
    fixed = _FIXED.match(spec)
    if fixed:
        month = _month(fixed.group("month"), text)
        day = int(fixed.group("day"))
        if not 1 <= day <= (29 if month == 2 else calendar.monthrange(2001, month)[1]):
            raise ValueError(f"'{text}': no day {day} in {calendar.month_name[month]}")
        return Recurring(name, month, day=day, offset=offset, observed=observed)
    nth = _NTH_DAY.match(spec)
    if nth:
        weekday = nth.group("weekday")
        if weekday not in _DAYS:
            raise ValueError(f"'{text}': unknown weekday '{weekday}'")
        return Recurring(name, _month(nth.group("month"), text), weekday=_DAYS.index(weekday),
                         nth=_NTH[nth.group("nth")], offset=offset, observed=observed)
    raise ValueError(f"'{text}' is not a day rule: write e.g. 'feb 12', '4th thu of nov', "
                     "'last mon of may', optionally followed by '+ 1'")


def _month(text: str, whole: str) -> int:
    if text not in _MONTHS[1:]:
        raise ValueError(f"'{whole}': unknown month '{text}'")
    return _MONTHS.index(text)


def supported() -> dict[str, tuple[str, ...]]:
    """Country code -> its subdivision codes, as the `holidays` library knows them."""
    return {country: tuple(subdivisions)
            for country, subdivisions in holidays.list_supported_countries().items()}


def categories_of(country: str) -> tuple[str, ...]:
    return tuple(holidays.country_holidays(country).supported_categories)


def _base_name(name: str) -> str:
    return name.removesuffix(" (observed)").strip().lower()


@dataclass(frozen=True, slots=True, eq=False)
class HolidayCalendar:
    """Which dates are holidays, for any year. Without a `country` it is the explicit `dates`."""

    country: str | None = None
    subdivision: str | None = None
    observed: bool = True
    categories: tuple[str, ...] = ("public",)
    additions: tuple[Recurring, ...] = ()
    removed_names: frozenset[str] = frozenset()  # lower-case, " (observed)" ignored
    dates: frozenset[date] = frozenset()  # one-off holidays
    removed_dates: frozenset[date] = frozenset()
    _years: dict[int, frozenset[date]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of_dates(cls, dates: Iterable[date]) -> HolidayCalendar:
        return cls(dates=frozenset(dates))

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        if self.country is None:
            return day in self.dates
        found = self._years.get(day.year)
        if found is None:
            found = self._years[day.year] = frozenset(self.named(day.year))
        return day in found

    def __bool__(self) -> bool:
        return self.country is not None or bool(self.dates)

    @property
    def by_rule(self) -> bool:
        return self.country is not None

    def named(self, year: int) -> dict[date, str]:
        """The holidays of `year`, each with its name (for `aupgate check` and the docs)."""
        days: dict[date, str] = {}
        if self.country is not None:
            found = holidays.country_holidays(
                self.country, subdiv=self.subdivision, years=year, observed=self.observed,
                categories=self.categories)
            for day, names in sorted(found.items()):
                kept = [n for n in names.split("; ") if _base_name(n) not in self.removed_names]
                if day.year == year and kept:
                    days[day] = "; ".join(kept)
            for rule in self.additions:
                for y in (year - 1, year, year + 1):
                    for day in rule.dates_in(y):
                        if day.year == year:
                            days.setdefault(day, rule.name if day == rule.dates_in(y)[0]
                                            else f"{rule.name} (observed)")
        for day in self.dates:
            if day.year == year:
                days.setdefault(day, "listed holiday")
        for day in self.removed_dates:
            days.pop(day, None)
        return dict(sorted(days.items()))

    def names_known(self, years: Iterable[int]) -> set[str]:
        """The base names the library gives in `years` (what `remove` may name)."""
        if self.country is None:
            return set()
        names: set[str] = set()
        for year in years:
            found = holidays.country_holidays(
                self.country, subdiv=self.subdivision, years=year, observed=self.observed,
                categories=self.categories)
            for joined in found.values():
                names |= {_base_name(n) for n in joined.split("; ")}
        return names
