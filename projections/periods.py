"""Dates, months and cohort periods as half-open ranges of instants (contract: Time).

A date D means the end of D, UTC: an event counts when `effective_at < D+1 00:00Z`. Every
bound is fixed-width UTC text, comparable with stored `effective_at` values as strings. The
bound after 9999-12-31 is `END_OF_TIME`, a text later than every instant: every date the
contract allows, 0001-01-01 to 9999-12-31, has its bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ledger.instants import format_instant, utc_instant


class PeriodError(ValueError):
    pass


END_OF_TIME = "9999-12-31T24:00:00.000000Z"  # the end of 9999-12-31: after every instant


def _start_of(day: date) -> str:
    return format_instant(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _first_of(year: int, month: int) -> str:
    """The first instant of a month, counted on past 12 (`END_OF_TIME` after 9999-12)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return END_OF_TIME if year > 9999 else _start_of(date(year, month, 1))


def parse_date(text: str) -> date:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise PeriodError(f"not a date (YYYY-MM-DD): {text!r}")


def end_of(day: date) -> str:
    """The bound for "at the end of `day`": the next day's first instant."""
    return END_OF_TIME if day == date.max else _start_of(day + timedelta(days=1))


def parse_month(text: str) -> date:
    """`2024-03` -> the first day of that month."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text, re.ASCII)
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) == 0:
        raise PeriodError(f"not a month (YYYY-MM): {text!r}")
    return date(int(match[1]), int(match[2]), 1)


def month_label(first: date) -> str:
    """`YYYY-MM`, four-digit years included (strftime writes year 1 as `1`)."""
    return first.isoformat()[:7]


def next_month(first: date) -> date:
    if (first.year, first.month) == (9999, 12):
        raise PeriodError("there is no month after 9999-12")
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def month_start(first: date) -> str:
    """The bound for "at the end of the month before the one starting `first`"."""
    return _start_of(first)


def month_end(first: date) -> str:
    """The bound for "at the end of the month starting `first`"."""
    return _first_of(first.year, first.month + 1)


def months(start: date, end: date) -> list[date]:
    """First days of the months from `start` to `end`, inclusive."""
    if end < start:
        raise PeriodError("the end month is before the start month")
    out = [start]
    while out[-1] < end:
        out.append(next_month(out[-1]))
    return out


@dataclass(frozen=True)
class Period:
    """A calendar year, quarter or month, as the half-open range [start, end)."""

    label: str
    start: str
    end: str


def parse_period(text: str) -> Period:
    """`2023`, `2023-Q2` or `2023-07`."""
    if (match := re.fullmatch(r"(\d{4})", text, re.ASCII)) and int(match[1]) > 0:
        first, months_ = date(int(match[1]), 1, 1), 12
    elif (match := re.fullmatch(r"(\d{4})-[Qq]([1-4])", text, re.ASCII)) and int(match[1]) > 0:
        first, months_ = date(int(match[1]), 3 * int(match[2]) - 2, 1), 3
    elif re.fullmatch(r"\d{4}-\d{2}", text, re.ASCII):
        first, months_ = parse_month(text), 1
    else:
        raise PeriodError(f"not a period (YYYY, YYYY-Qn or YYYY-MM): {text!r}")
    return Period(text.upper(), _start_of(first), _first_of(first.year, first.month + months_))


GRAINS = ("month", "quarter", "year")


def period_of(day: date, grain: str) -> Period:
    """The month, quarter or year containing `day`."""
    if grain == "month":
        return parse_period(f"{day.year:04d}-{day.month:02d}")
    if grain == "quarter":
        return parse_period(f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}")
    return parse_period(f"{day.year:04d}")


def periods(first: date, last: date, grain: str) -> list[Period]:
    """The periods of a grain from the one containing `first` to the one containing `last`."""
    if last < first:
        raise PeriodError("the end is before the start")
    out = [period_of(first, grain)]
    end = period_of(last, grain)
    while out[-1] != end:  # `end` is not the last period, so `out[-1].end` is a real day
        out.append(period_of(date.fromisoformat(out[-1].end[:10]), grain))
    return out


# -- what a person types for --start, --end and --at: one parser, one place -----------------
WHEN = "YYYY-MM-DD, YYYY-MM, YYYY-Qn or YYYY"


def parse_span(text: str) -> tuple[date, date]:
    """The first and last day that a date (`2024-03-15`), a month (`2024-03`), a quarter
    (`2024-Q1`) or a year (`2024`) covers."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        day = parse_date(text)
        return day, day
    try:
        period = parse_period(text)
    except PeriodError:
        raise PeriodError(f"not a date or period ({WHEN}): {text!r}") from None
    first = date.fromisoformat(period.start[:10])
    last = date.max if period.end == END_OF_TIME else (
        date.fromisoformat(period.end[:10]) - timedelta(days=1))
    return first, last


def start_day(text: str) -> date:
    """`--start`: the day at whose end a period starts. A date is itself (its end, as
    everywhere); a month, quarter or year means its start, the end of the day before it:
    `--start 2024-Q1` is the end of 2023-12-31, so `--start 2024 --end 2024` spans 2024."""
    first, last = parse_span(text)
    if first == last:
        return first
    if first == date.min:
        raise PeriodError(f"{text!r} starts before the first date there is; "
                          "give a date (its end) instead")
    return first - timedelta(days=1)


def end_day(text: str) -> date:
    """`--end` and `--at`: a date is itself; a period means its end, its last day."""
    return parse_span(text)[1]


def start_month(text: str) -> date:
    """`--start` of a monthly command: the first month the date or period touches."""
    return parse_span(text)[0].replace(day=1)


def end_month(text: str) -> date:
    """`--end` of a monthly command: the last month the date or period touches."""
    return parse_span(text)[1].replace(day=1)


def parse_known_at(text: str) -> str:
    """An RFC 3339 instant with offset (or a date, meaning its end) as fixed-width text."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return f"{parse_date(text).isoformat()}T23:59:59.999999Z"
    try:
        return utc_instant(text)
    except ValueError as exc:
        raise PeriodError(str(exc)) from None


def parse_segment(pairs: tuple[str, ...]) -> dict[str, str]:
    """All given pairs must hold, so one key with two values matches no customer: refused
    as a usage error, which says more than an empty answer would."""
    segment: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PeriodError(f"not a segment (KEY=VALUE): {pair!r}")
        if segment.get(key, value) != value:
            raise PeriodError(f"key {key!r} given twice ({segment[key]!r} and {value!r}): "
                              "no customer has both values")
        segment[key] = value
    return segment
