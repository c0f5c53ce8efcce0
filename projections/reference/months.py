"""Days and months as instants, plainly: a day's last microsecond, a month's first instant,
the instant before it, and the periods (`2023`, `2023-Q2`, `2023-07`) a cohort names. Texts
after 9999-12 sort after every instant, so no date past 9999-12-31 is ever built."""

from __future__ import annotations

import re
from datetime import date, timedelta


def last_instant(day: date) -> str:
    return f"{day.isoformat()}T23:59:59.999999Z"


def in_period(instant: str | None, period: str) -> bool:
    """Whether an instant lies in `2023`, `2023-Q2` or `2023-07`."""
    if instant is None:
        return False
    year, month = instant[:4], int(instant[5:7])
    if re.fullmatch(r"\d{4}", period):
        return year == period
    if m := re.fullmatch(r"(\d{4})-[Qq]([1-4])", period):
        return year == m[1] and (month - 1) // 3 + 1 == int(m[2])
    return instant[:7] == period


def month_start(month: str) -> str:
    """A month's first instant; after 9999-12, a text later than every instant."""
    return f"{month}-01T00:00:00.000000Z" if month <= "9999-12" else "9999-12-31T24"


def next_month(month: str) -> str:
    year, m = int(month[:4]), int(month[5:7])
    return f"{year + m // 12:04d}-{m % 12 + 1:02d}"


def month_last_day(month: str) -> date:
    following = next_month(month)
    if following > "9999-12":
        return date(9999, 12, 31)
    return date.fromisoformat(following + "-01") - timedelta(days=1)


def microsecond_before(first_instant: str) -> str:
    """The last instant before a month's first: events effective then count at its end."""
    if first_instant.startswith("0001-01-01"):
        return "0000"  # before every instant
    return last_instant(date.fromisoformat(first_instant[:10]) - timedelta(days=1))


def month_range(first: str, last: str) -> list[str]:
    out = [first]
    while out[-1] < last:
        out.append(next_month(out[-1]))
    return out
