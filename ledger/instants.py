"""Instants as the ledger writes them: RFC 3339 in, fixed-width UTC text out.

Fixed-width text (`2024-01-15T08:00:00.000000Z`) sorts in time order as a string, in
Python and in SQL, so stored instants compare without parsing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# RFC 3339 date-time with a mandatory offset, ASCII digits only. Any number of fractional
# digits is valid: the ledger keeps microseconds (the rest is cut off, never rounded, so an
# instant never moves into the next second, day or month). A leap second (:60) is read as
# the last microsecond of its minute, so it sorts after every instant of that minute.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:)(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
# The form billing systems mostly send: whole seconds in UTC.
_WHOLE_SECONDS_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:[0-5]\dZ", re.ASCII)


_DATE_ALONE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?", re.ASCII)


def _what_is_wrong(text: str) -> str:
    """One sentence: what is wrong with a timestamp that did not parse, and how to write
    it, so that a producer can fix it from the message alone."""
    if _DATE_ALONE.fullmatch(text):
        return f"{text!r} is a date alone; write a timestamp with offset: {text}T00:00:00Z"
    if _NAIVE.fullmatch(text):
        return f"{text!r} has no offset; add Z for UTC (or +hh:mm)"
    return f"{text!r} is not an RFC 3339 timestamp with offset, such as 2024-01-15T08:00:00Z"


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset; naive times are refused, with
    a message that says what was wrong (`ValueError`)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(_what_is_wrong(text))
    minute, second, fraction, offset = match.groups()
    micro = (fraction or "")[:6].ljust(6, "0")
    if second == "60":
        second, micro = "59", "999999"
    try:
        moment = datetime.fromisoformat(
            f"{minute.upper()}{second}.{micro}{offset.upper()}".replace(" ", "T"))
    except ValueError as exc:  # a month 13, a February 30th, an hour 24
        raise ValueError(f"{text!r} is no real date and time ({exc})") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise ValueError(f"out of range in UTC: {text!r}") from None


def format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def utc_instant(text: str) -> str:
    """An RFC 3339 timestamp with offset as fixed-width UTC text. Every feed line goes
    through here, so the usual form skips the conversion: a quarter of the time."""
    if len(text) == 20 and _WHOLE_SECONDS_UTC.fullmatch(text):
        try:
            datetime.fromisoformat(text)  # a real date and time, or ValueError
        except ValueError as exc:
            raise ValueError(f"{text!r} is no real date and time ({exc})") from None
        return text[:19] + ".000000Z"
    return format_instant(parse_instant(text))


def utc_text(iso: str) -> str:
    """eventsourcing's `isoformat()` of a UTC timestamp, as fixed-width UTC text."""
    if len(iso) == 32 and iso.endswith("+00:00"):  # the usual case, without parsing
        return iso[:26] + "Z"
    return format_instant(datetime.fromisoformat(iso))
