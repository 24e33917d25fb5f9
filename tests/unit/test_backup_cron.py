"""Backup schedules: five-field cron expressions in UTC, parsed and searched as Vixie cron
would, with errors that name the field, and searches that never walk minute by minute."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.backup.domain.cron import CronError, parse_cron


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
       ) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(expression: str, start: datetime, count: int) -> list[datetime]:
    cron, out, t = parse_cron(expression), [], start
    for _ in range(count):
        t = cron.next_after(t)
        out.append(t)
    return out


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expression", "expected"),
    [
        ("minutes", "*/15 * * * *", (0, 15, 30, 45)),
        ("minutes", "1-5/2 * * * *", (1, 3, 5)),
        ("minutes", "1,2,5-7 * * * *", (1, 2, 5, 6, 7)),
        ("minutes", "59,0,30 * * * *", (0, 30, 59)),
        ("minutes", "*/59 * * * *", (0, 59)),
        ("minutes", "10-20/30 * * * *", (10,)),
        ("hours", "0 9-17/4 * * *", (9, 13, 17)),
        ("hours", "0 */6 * * *", (0, 6, 12, 18)),
        ("days", "0 0 */10 * *", (1, 11, 21, 31)),
        ("months", "0 0 1 jan,JUL,Dec *", (1, 7, 12)),
        ("months", "0 0 1 mar-may *", (3, 4, 5)),
        ("months", "0 0 1 */3 *", (1, 4, 7, 10)),
        ("weekdays", "0 0 * * mon-fri", (1, 2, 3, 4, 5)),
        ("weekdays", "0 0 * * Sat,SUN", (0, 6)),
        ("weekdays", "0 0 * * 7", (0,)),
        ("weekdays", "0 0 * * 5-7", (0, 5, 6)),
        ("weekdays", "0 0 * * 0,7", (0,)),
        ("weekdays", "0 0 * * *", (0, 1, 2, 3, 4, 5, 6)),
        ("weekdays", "0 0 * * */2", (0, 2, 4, 6)),
        ("weekdays", "0 0 * * mon-sun", (0, 1, 2, 3, 4, 5, 6)),  # sun ends a range as 7
        ("weekdays", "0 0 * * mon-sun/3", (0, 1, 4)),  # 1, 4, 7
        ("weekdays", "0 0 * * sun-tue", (0, 1, 2)),  # and starts one as 0
    ],
)
def test_fields_parse_lists_ranges_steps_and_names(field: str, expression: str,
                                                   expected: tuple[int, ...]) -> None:
    assert getattr(parse_cron(expression), field) == expected


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("  @DAILY ", "0 0 * * *"),
    ],
)
def test_macros_mean_their_five_fields(macro: str, expansion: str) -> None:
    start = at(2026, 11, 28, 13, 7)
    assert fires(macro, start, 5) == fires(expansion, start, 5)


def test_the_text_is_kept_with_its_whitespace_folded() -> None:
    assert str(parse_cron("  0  2 * *   * ")) == "0 2 * * *"
    assert str(parse_cron("@daily")) == "@daily"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 3 * * 8", '"0 3 * * 8": day-of-week 8 is out of range 0-7'),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 1 13 *", "month 13 is out of range 1-12"),
        ("0 0 1 0 *", "month 0 is out of range 1-12"),
        ("0 3 * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 3 * * * *", "expected 5 fields"),
        ("", "expected 5 fields"),
        ("@reboot", "unknown macro @reboot; use one of @yearly"),
        ("@every 5m", "unknown macro @every 5m"),
        ("x * * * *", "minute 'x' is not a number"),
        ("-1 * * * *", "minute '' is not a number"),
        ("0 0 ? * *", "day-of-month '?' is not a number"),
        ("0 0 L * *", "day-of-month 'L' is not a number"),
        ("0 0 * foo *", "month 'foo' is not a number or a month name (jan-dec)"),
        ("0 0 * * jan", "day-of-week 'jan' is not a number or a day name (sun-sat)"),
        ("0 0 * mon *", "month 'mon' is not a number or a month name"),
        ("0 0 * * monday", "day-of-week 'monday' is not a number or a day name"),
        ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
        ("1, * * * *", "minute '1,' has an empty list item"),
        ("5-1 * * * *", "minute range 5-1 runs backwards; to wrap around write two ranges: "
                        "5-59,0-1"),
        ("0 22-2 * * *", "hour range 22-2 runs backwards"),
        ("0 0 * * fri-mon", "day-of-week range fri-mon runs backwards"),
        ("*/0 * * * *", "minute step 0 is out of range 1-59"),
        ("*/60 * * * *", "minute step 60 is out of range 1-59"),
        ("0 0 * */13 *", "month step 13 is out of range 1-12"),
        ("*/x * * * *", "minute step 'x' is not a number"),
        ("*/ * * * *", "minute step '' is not a number"),
        ("5/15 * * * *", "minute step '5/15' needs a range or *; write 5-59/15"),
        ("1-5/2/3 * * * *", "minute step '2/3' is not a number"),
        ("\u0661 * * * *", "minute '\u0661' is not a number"),  # Arabic-Indic 1: isdigit()
    ],
)
def test_errors_name_the_expression_the_field_and_the_problem(expression: str,
                                                             message: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(expression)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f'"{expression}": ')
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 30 2 *", "day-of-month 30 never occurs in february"),
        ("0 0 31 2 *", "day-of-month 31 never occurs in february"),
        ("0 0 30,31 feb *", "day-of-month 30, 31 never occurs in february"),
        ("0 0 31 4 *", "day-of-month 31 never occurs in april"),
        ("0 0 31 4,6,9,11 *", "day-of-month 31 never occurs in april, june, september, "
                              "november"),
        ("0 0 31 2,4 */7", "never occurs"),  # `*/7` counts as `*`: the day must match
    ],
)
def test_dates_that_never_occur_are_refused_when_parsed(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression)


@pytest.mark.parametrize(
    "expression",
    ["0 0 29 2 *", "0 0 31 1-12 *", "0 0 30,1 2 *", "0 0 31 2 mon", "0 0 31 4 mon-fri/7"],
)
def test_dates_that_occur_somewhere_are_accepted(expression: str) -> None:
    parse_cron(expression)


# -- next_after -----------------------------------------------------------------------------


def test_next_after_is_strictly_after_and_on_a_whole_minute() -> None:
    cron = parse_cron("0 2 * * *")
    assert cron.next_after(at(2026, 11, 28, 1, 59, 59)) == at(2026, 11, 28, 2, 0)
    assert cron.next_after(at(2026, 11, 28, 2, 0)) == at(2026, 11, 29, 2, 0)
    assert cron.next_after(at(2026, 11, 28, 2, 0, 1)) == at(2026, 11, 29, 2, 0)
    every = parse_cron("* * * * *")
    assert every.next_after(at(2026, 11, 28, 2, 0, 30)) == at(2026, 11, 28, 2, 1)
    assert every.next_after(at(2026, 11, 28, 2, 0).replace(microsecond=1)) == at(
        2026, 11, 28, 2, 1)
    got = every.next_after(at(2026, 11, 28, 2, 0, 30))
    assert got.tzinfo is UTC and got.second == 0 and got.microsecond == 0


def test_times_in_other_zones_are_read_as_the_same_instant_and_answered_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    cron = parse_cron("0 2 * * *")
    # 02:30 in Paris is 01:30 UTC: today's 02:00 UTC is still ahead.
    got = cron.next_after(datetime(2026, 11, 28, 2, 30, tzinfo=paris))
    assert got == at(2026, 11, 28, 2, 0)
    assert got.tzinfo is UTC


def test_naive_times_are_refused() -> None:
    cron = parse_cron("@daily")
    for search in (cron.next_after, cron.previous_before, cron.matches):
        with pytest.raises(ValueError, match="timezone-aware"):
            search(datetime(2026, 11, 28))


def test_step_ranges_fire_on_their_steps_only() -> None:
    assert fires("*/15 9-10 * * *", at(2026, 11, 28, 9, 50), 4) == [
        at(2026, 11, 28, 10, 0), at(2026, 11, 28, 10, 15), at(2026, 11, 28, 10, 30),
        at(2026, 11, 28, 10, 45)]
    assert fires("0 1-5/2 * * *", at(2026, 11, 28), 4) == [
        at(2026, 11, 28, 1), at(2026, 11, 28, 3), at(2026, 11, 28, 5), at(2026, 11, 29, 1)]


def test_hour_and_minute_roll_over_days_months_and_years() -> None:
    assert parse_cron("30 * * * *").next_after(at(2026, 12, 31, 23, 30)) == at(2027, 1, 1, 0, 30)
    assert parse_cron("0 0 1 * *").next_after(at(2026, 12, 31, 23, 59)) == at(2027, 1, 1)
    assert parse_cron("0 0 * * *").next_after(at(2026, 2, 28, 0, 0)) == at(2026, 3, 1)
    assert parse_cron("0 0 * * *").next_after(at(2028, 2, 28, 0, 0)) == at(2028, 2, 29)


def test_the_31st_skips_the_months_without_one() -> None:
    assert fires("0 12 31 * *", at(2026, 1, 31, 12), 7) == [
        at(2026, 3, 31, 12), at(2026, 5, 31, 12), at(2026, 7, 31, 12), at(2026, 8, 31, 12),
        at(2026, 10, 31, 12), at(2026, 12, 31, 12), at(2027, 1, 31, 12)]


def test_february_29th_fires_only_in_leap_years() -> None:
    assert fires("0 0 29 2 *", at(2025, 3, 1), 3) == [
        at(2028, 2, 29), at(2032, 2, 29), at(2036, 2, 29)]
    # 2100 is not a leap year (divisible by 100, not by 400); 2000 was.
    assert parse_cron("0 0 29 2 *").next_after(at(2096, 3, 1)) == at(2104, 2, 29)
    assert parse_cron("0 0 29 2 *").previous_before(at(2003, 1, 1)) == at(2000, 2, 29)


def test_february_29th_on_a_sunday_is_found_decades_away() -> None:
    # `*/7` starts with `*`, so both day fields must match: Feb 29 that is a Sunday.
    cron = parse_cron("0 0 29 2 */7")
    assert cron.next_after(at(2026, 1, 1)) == at(2032, 2, 29)
    assert cron.previous_before(at(2026, 1, 1)) == at(2004, 2, 29)
    assert cron.next_after(at(2032, 2, 29)) == at(2060, 2, 29)


def test_both_day_fields_restricted_fire_on_either() -> None:
    # Vixie: "0 0 1 * mon" is the 1st of the month AND every Monday.
    assert fires("0 0 1 * mon", at(2026, 11, 28), 4) == [
        at(2026, 11, 30), at(2026, 12, 1), at(2026, 12, 7), at(2026, 12, 14)]
    assert fires("0 0 13 * fri", at(2026, 11, 1), 4) == [
        at(2026, 11, 6), at(2026, 11, 13), at(2026, 11, 20), at(2026, 11, 27)]


def test_a_star_day_field_makes_the_other_one_decide() -> None:
    assert fires("0 0 * * mon", at(2026, 11, 28), 2) == [at(2026, 11, 30), at(2026, 12, 7)]
    assert fires("0 0 1 * *", at(2026, 11, 28), 2) == [at(2026, 12, 1), at(2027, 1, 1)]
    # As in Vixie cron, a field starting with `*` counts as unrestricted even with a step:
    # odd days of the month that are ALSO Mondays.
    assert fires("0 0 */2 * mon", at(2026, 11, 28), 3) == [
        at(2026, 12, 7), at(2026, 12, 21), at(2027, 1, 11)]


def test_sunday_is_0_or_7() -> None:
    assert fires("0 0 * * 7", at(2026, 11, 28), 2) == fires("0 0 * * 0", at(2026, 11, 28), 2)
    assert fires("0 0 * * sun", at(2026, 11, 28), 1) == [at(2026, 11, 29)]


def test_macros_fire_when_crontab_says() -> None:
    start = at(2026, 11, 28, 13, 7)
    assert parse_cron("@hourly").next_after(start) == at(2026, 11, 28, 14)
    assert parse_cron("@daily").next_after(start) == at(2026, 11, 29)
    assert parse_cron("@weekly").next_after(start) == at(2026, 11, 29)  # a Sunday
    assert parse_cron("@monthly").next_after(start) == at(2026, 12, 1)
    assert parse_cron("@yearly").next_after(start) == at(2027, 1, 1)


def test_the_search_ends_at_the_calendar_s_end_with_an_error() -> None:
    cron = parse_cron("0 0 1 1 *")
    with pytest.raises(CronError, match="no fire time after"):
        cron.next_after(at(9999, 6, 1))
    with pytest.raises(CronError, match="no fire time after"):
        cron.next_after(datetime.max.replace(tzinfo=UTC))
    assert cron.previous_before(at(1, 1, 1, 0, 0, 30)) == at(1, 1, 1)
    with pytest.raises(CronError, match="no fire time before"):
        cron.previous_before(at(1, 1, 1))


def test_searching_a_yearly_schedule_does_not_walk_minute_by_minute() -> None:
    cron = parse_cron("59 23 31 12 *")
    began = time.perf_counter()
    t = at(2026, 1, 1)
    for _ in range(200):
        t = cron.next_after(t)
    assert t == at(2225, 12, 31, 23, 59)
    for _ in range(200):
        t = cron.previous_before(t)
    assert t == at(2025, 12, 31, 23, 59)
    # 400 searches across a year each: a minute-by-minute walk takes minutes, this takes ms.
    assert time.perf_counter() - began < 2


# -- previous_before and latest_at_or_before ------------------------------------------------


def test_previous_before_is_strictly_before() -> None:
    cron = parse_cron("0 2 * * *")
    assert cron.previous_before(at(2026, 11, 28, 2, 0)) == at(2026, 11, 27, 2, 0)
    assert cron.previous_before(at(2026, 11, 28, 2, 0, 1)) == at(2026, 11, 28, 2, 0)
    assert cron.previous_before(at(2026, 11, 28, 1, 59)) == at(2026, 11, 27, 2, 0)
    assert parse_cron("* * * * *").previous_before(at(2026, 11, 28, 2, 0, 30)) == at(
        2026, 11, 28, 2, 0)


def test_previous_before_crosses_months_and_years_backwards() -> None:
    assert parse_cron("0 12 31 * *").previous_before(at(2026, 5, 1)) == at(2026, 3, 31, 12)
    assert parse_cron("45 23 * * *").previous_before(at(2027, 1, 1)) == at(2026, 12, 31, 23, 45)
    assert parse_cron("*/20 9-17 * * mon-fri").previous_before(at(2026, 11, 30, 8, 10)) == at(
        2026, 11, 27, 17, 40)  # Monday 08:10 → Friday's last


def test_latest_at_or_before_includes_the_minute_itself() -> None:
    cron = parse_cron("0 2 * * *")
    assert cron.latest_at_or_before(at(2026, 11, 28, 2, 0)) == at(2026, 11, 28, 2, 0)
    assert cron.latest_at_or_before(at(2026, 11, 28, 2, 0, 59)) == at(2026, 11, 28, 2, 0)
    assert cron.latest_at_or_before(at(2026, 11, 28, 1, 59, 59)) == at(2026, 11, 27, 2, 0)
    assert cron.latest_at_or_before(datetime.max.replace(tzinfo=UTC)) == at(9999, 12, 31, 2)


# -- against a minute-by-minute reference ---------------------------------------------------

_PIECES = {
    "minute": ["*", "0", "*/7", "5-50/15", "0,30", "59", "10-12"],
    "hour": ["*", "0", "*/5", "9-17", "23", "1,13", "0-23/11"],
    "day": ["*", "1", "*/3", "15-17", "31", "29", "28-31/2", "1,15"],
    "month": ["*", "*", "2", "jan-mar", "*/4", "2,8,12"],
    "weekday": ["*", "*", "mon", "sat,sun", "1-5", "7", "*/3"],
}
_WINDOW = timedelta(days=3)


def _brute_next(expression: str, t: datetime) -> datetime | None:
    cron, candidate = parse_cron(expression), t.replace(second=0, microsecond=0)
    for _ in range(int(_WINDOW / timedelta(minutes=1))):
        candidate += timedelta(minutes=1)
        if cron.matches(candidate):
            return candidate
    return None


def _brute_previous(expression: str, t: datetime) -> datetime | None:
    cron = parse_cron(expression)
    candidate = t.replace(second=0, microsecond=0)
    if candidate == t:
        candidate -= timedelta(minutes=1)
    for _ in range(int(_WINDOW / timedelta(minutes=1))):
        if cron.matches(candidate):
            return candidate
        candidate -= timedelta(minutes=1)
    return None


def _random_cases(count: int) -> list[tuple[str, datetime]]:
    rng = random.Random(20261128)
    cases: list[tuple[str, datetime]] = []
    while len(cases) < count:
        expression = " ".join(rng.choice(p) for p in _PIECES.values())
        try:
            parse_cron(expression)
        except CronError:
            continue  # a date that never occurs, refused: pinned above
        start = at(2024, 1, 1) + timedelta(minutes=rng.randrange(4 * 366 * 24 * 60),
                                           seconds=rng.choice([0, 0, 30]))
        cases.append((expression, start))
    return cases


@pytest.mark.parametrize(("expression", "start"), _random_cases(60))
def test_searches_agree_with_checking_every_minute(expression: str, start: datetime) -> None:
    cron = parse_cron(expression)
    forward, backward = cron.next_after(start), cron.previous_before(start)
    expected_forward, expected_backward = (_brute_next(expression, start),
                                           _brute_previous(expression, start))
    if expected_forward is None:
        assert forward > start + _WINDOW
    else:
        assert forward == expected_forward
    if expected_backward is None:
        assert backward < start - _WINDOW
    else:
        assert backward == expected_backward
    assert cron.matches(forward) and cron.matches(backward)
    # Each search undoes the other; a start that is itself a fire time sits between them.
    on_fire_time = start.second == 0 and cron.matches(start)
    assert cron.previous_before(forward) == (start if on_fire_time else backward)
    assert cron.next_after(backward) == (start if on_fire_time else forward)
