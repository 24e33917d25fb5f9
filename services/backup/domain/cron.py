"""Cron expressions for backup schedules: five fields, in UTC, read as Vixie cron reads them.

A schedule is written once in `guardians.yaml` and read by people who know crontab(5), so it
means what it means there: `minute hour day-of-month month day-of-week`, with `*`, lists,
ranges, steps (`*/15`, `1-5/2`), three-letter month and day names, 7 as a second Sunday (and
`sun` ending a range as 7, so `mon-sun` is the whole week), and the macros `@hourly`,
`@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`).
When both day fields are restricted a day matches if EITHER does (`0 0 1 * mon` is the 1st
and every Monday); when either starts with `*` both must match. As in Vixie cron that test
is on the first character, so `*/2` counts as unrestricted: `0 0 */2 * mon` is the odd days
that are Mondays.

Times are UTC, so there is no daylight-saving gap or repeat to handle. Searching goes month
by month and, in a matching month, day by day, taking the hour and minute from the sorted
sets directly: a yearly schedule costs a dozen steps, not half a million minutes. An
expression that can never fire (`0 0 30 2 *`) is refused when parsed, and the search is
still bounded (the Gregorian calendar repeats every 400 years), so no input loops forever.

Errors name the expression, the field and the problem:
`"0 3 * * 8": day-of-week 8 is out of range 0-7`.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_MINUTE = timedelta(minutes=1)
_SEARCH_MONTHS = 12 * 401
"""Every date and weekday combination that ever occurs occurs within one 400-year cycle."""

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTH_LABELS = ("", "january", "february", "march", "april", "may", "june", "july",
                 "august", "september", "october", "november", "december")


class CronError(ValueError):
    """An expression that does not parse or never fires, or a search that found nothing."""

    def __init__(self, text: str, problem: str) -> None:
        self.text = text
        self.problem = problem
        super().__init__(f'"{text}": {problem}')


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 7, _DAY_NAMES),
)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the sorted values each field allows."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    """Days of the month, 1-31."""
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    """0-6, 0 = Sunday (a 7 in the expression is stored as 0)."""
    either_day: bool
    """Both day fields are restricted, so a day matching either one fires (Vixie)."""

    def __str__(self) -> str:
        return self.text

    def matches(self, t: datetime) -> bool:
        """Whether `t`, to the minute, is a fire time."""
        t = as_utc(t)
        return (t.minute in self.minutes and t.hour in self.hours
                and t.month in self.months and self._day_matches(t.date()))

    def next_after(self, t: datetime) -> datetime:
        """The first fire time strictly after `t` (UTC, second 0)."""
        try:
            start = _floor_minute(as_utc(t)) + _MINUTE
        except OverflowError:
            raise CronError(self.text, f"no fire time after {t.isoformat()}") from None
        for day in self._days_from(start.date(), step=1):
            hit = self._first_time(start.hour, start.minute) if day == start.date() else (
                self.hours[0], self.minutes[0])
            if hit is not None:
                return datetime(day.year, day.month, day.day, *hit, tzinfo=UTC)
        raise CronError(self.text, f"no fire time after {t.isoformat()}")

    def previous_before(self, t: datetime) -> datetime:
        """The last fire time strictly before `t` (UTC, second 0)."""
        t = as_utc(t)
        end = _floor_minute(t)
        if end == t:
            try:
                end -= _MINUTE
            except OverflowError:
                raise CronError(self.text, f"no fire time before {t.isoformat()}") from None
        for day in self._days_from(end.date(), step=-1):
            hit = self._last_time(end.hour, end.minute) if day == end.date() else (
                self.hours[-1], self.minutes[-1])
            if hit is not None:
                return datetime(day.year, day.month, day.day, *hit, tzinfo=UTC)
        raise CronError(self.text, f"no fire time before {t.isoformat()}")

    def latest_at_or_before(self, t: datetime) -> datetime:
        """The fire time due at `t`: `t` itself if it is one (to the minute), else the last
        one before it."""
        minute = _floor_minute(as_utc(t))
        return minute if self.matches(minute) else self.previous_before(minute)

    # -- search -----------------------------------------------------------------------------

    def _day_matches(self, d: date) -> bool:
        in_days = d.day in self.days
        in_weekdays = d.isoweekday() % 7 in self.weekdays
        return (in_days or in_weekdays) if self.either_day else (in_days and in_weekdays)

    def _days_from(self, first: date, step: int) -> Iterator[date]:
        """Matching days from `first` onwards (step 1) or backwards (step -1), bounded."""
        year, month = first.year, first.month
        for _ in range(_SEARCH_MONTHS):
            if month in self.months:
                last_day = calendar.monthrange(year, month)[1]
                if (year, month) == (first.year, first.month):
                    days = range(first.day, last_day + 1) if step > 0 else range(first.day, 0, -1)
                else:
                    days = range(1, last_day + 1) if step > 0 else range(last_day, 0, -1)
                for day in days:
                    candidate = date(year, month, day)
                    if self._day_matches(candidate):
                        yield candidate
            year, month = _shift_month(year, month, step)
            if not 1 <= year <= 9999:
                return

    def _first_time(self, hour: int, minute: int) -> tuple[int, int] | None:
        """The first (hour, minute) at or after the given one on a matching day."""
        h = _at_least(self.hours, hour)
        if h == hour:
            m = _at_least(self.minutes, minute)
            if m is not None:
                return h, m
            h = _at_least(self.hours, hour + 1)
        return None if h is None else (h, self.minutes[0])

    def _last_time(self, hour: int, minute: int) -> tuple[int, int] | None:
        """The last (hour, minute) at or before the given one on a matching day."""
        h = _at_most(self.hours, hour)
        if h == hour:
            m = _at_most(self.minutes, minute)
            if m is not None:
                return h, m
            h = _at_most(self.hours, hour - 1)
        return None if h is None else (h, self.minutes[-1])


def parse_cron(text: str) -> Cron:
    """Parse a five-field expression or a macro; raise `CronError` naming what is wrong."""
    expanded = _expand_macro(text)
    parts = expanded.split()
    if len(parts) != len(_FIELDS):
        raise CronError(text, f"expected 5 fields (minute hour day-of-month month day-of-week),"
                              f" got {len(parts)}")
    minutes, hours, days, months, weekdays = (
        _parse_field(text, part, spec) for part, spec in zip(parts, _FIELDS, strict=True))
    cron = Cron(
        text=" ".join(text.split()),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=tuple(sorted({d % 7 for d in weekdays})),
        either_day=not parts[2].startswith("*") and not parts[4].startswith("*"),
    )
    if not cron.either_day:
        _check_some_day_exists(text, cron)
    return cron


# -- parsing --------------------------------------------------------------------------------


def _expand_macro(text: str) -> str:
    stripped = text.strip()
    if not stripped.startswith("@"):
        return text
    try:
        return _MACROS[stripped.lower()]
    except KeyError:
        raise CronError(text, f"unknown macro {stripped}; use one of "
                              f"{', '.join(_MACROS)} or five fields") from None


def _parse_field(text: str, part: str, spec: _Field) -> tuple[int, ...]:
    values: set[int] = set()
    for item in part.split(","):
        if not item:
            raise CronError(text, f"{spec.name} {part!r} has an empty list item")
        values.update(_parse_item(text, item, spec))
    return tuple(sorted(values))


def _parse_item(text: str, item: str, spec: _Field) -> range:
    """One list item: `*`, `N`, `A-B`, each optionally with `/STEP` after `*` or a range."""
    base, slash, step_text = item.partition("/")
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(text, first, spec), _value(text, last, spec)
        if spec.name == "day-of-week" and last.lower() == "sun":
            high = 7  # `mon-sun`: a range that ends on Sunday ends on the 7
        if low > high:
            raise CronError(text, f"{spec.name} range {base} runs backwards; to wrap around"
                                  f" write two ranges: {low}-{spec.high},{spec.low}-{high}")
    else:
        low = high = _value(text, base, spec)
        if slash:
            raise CronError(text, f"{spec.name} step {item!r} needs a range or *; write "
                                  f"{base}-{spec.high}/{step_text}")
    step = _step(text, step_text, spec) if slash else 1
    return range(low, high + 1, step)


def _value(text: str, word: str, spec: _Field) -> int:
    if spec.names is not None and word.lower() in spec.names:
        return spec.names[word.lower()]
    if not word.isascii() or not word.isdigit():
        kind = {"month": "a month name (jan-dec)", "day-of-week": "a day name (sun-sat)"}
        what = f"a number or {kind[spec.name]}" if spec.name in kind else "a number"
        raise CronError(text, f"{spec.name} {word!r} is not {what}")
    value = int(word)
    if not spec.low <= value <= spec.high:
        raise CronError(text, f"{spec.name} {value} is out of range {spec.low}-{spec.high}")
    return value


def _step(text: str, word: str, spec: _Field) -> int:
    if not word.isascii() or not word.isdigit():
        raise CronError(text, f"{spec.name} step {word!r} is not a number")
    step = int(word)
    if not 1 <= step <= spec.high:
        raise CronError(text, f"{spec.name} step {step} is out of range 1-{spec.high}")
    return step


def _check_some_day_exists(text: str, cron: Cron) -> None:
    """When the day of the month must match, some chosen month must have a chosen day.

    Any date that exists falls on every weekday in some year, so the weekday field cannot
    make an existing date impossible; February counts with 29 days (leap years)."""
    if any(day <= _longest(month) for month in cron.months for day in cron.days):
        return
    months = ", ".join(_MONTH_LABELS[m] for m in cron.months)
    days = ", ".join(str(d) for d in cron.days)
    raise CronError(text, f"day-of-month {days} never occurs in {months}")


# -- calendar arithmetic --------------------------------------------------------------------


def _longest(month: int) -> int:
    return calendar.monthrange(2000, month)[1]  # 2000 is a leap year


def _shift_month(year: int, month: int, step: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + step
    return index // 12, index % 12 + 1


def _at_least(values: tuple[int, ...], bound: int) -> int | None:
    i = bisect_left(values, bound)
    return values[i] if i < len(values) else None


def _at_most(values: tuple[int, ...], bound: int) -> int | None:
    i = bisect_right(values, bound)
    return values[i - 1] if i > 0 else None


def as_utc(t: datetime) -> datetime:
    """`t` in UTC; a naive time is refused, as its zone would be a guess."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"times must be timezone-aware; got the naive {t.isoformat()}")
    return t.astimezone(UTC)


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)
