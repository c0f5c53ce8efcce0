"""The ECB's euro foreign exchange reference rates, as the ECB publishes them, into
`fx.rate` events (contract v2).

Two files, one layout: a header `Date,USD,JPY,...` (each currency's ISO 4217 code, a
trailing comma), then one line per business day, 1 EUR in each currency, `N/A` (or an
empty cell) where the ECB had no rate that day. `eurofxref-hist.csv` writes dates as
`2024-06-14` and has every day since 1999, newest first; the daily `eurofxref.csv` writes
`14 June 2024` and pads every cell with a space.

Each rate becomes one event, `1 EUR = rate CCY` from the start of its day (UTC), with the
id `ecb:DATE:EUR/CCY`: importing a newer file again records only the days the ledger
does not hold (the others are duplicates). The rate's text is written without trailing
zeros, so that the daily file's `168.10` and the history's `168.1` are the same event.
A column of a currency ISO 4217 no longer lists (CYP, DEM-era codes, HRK, ...) is ignored:
the ledger takes active codes only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

import orjson

from ledger.currencies import is_active
from ledger.feed import MAX_LINE, Rejected
from ledger.kinds import FX_RATE
from ledger.sources.base import Delivery, Ignored, Line, Lookup, RefusedDelivery, SourceBase

MONTHS = {name: n for n, name in enumerate(
    ("January", "February", "March", "April", "May", "June", "July", "August",
     "September", "October", "November", "December"), 1)}
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_DAILY_DATE = re.compile(r"(\d{1,2}) ([A-Z][a-z]+) (\d{4})", re.ASCII)
_DECIMAL = re.compile(r"\d+(\.\d+)?", re.ASCII)
MISSING = ("", "N/A")
HEADER_HINT = ("not an ECB reference rate file: the first line must be the ECB's header "
               "`Date,USD,JPY,...` (eurofxref-hist.csv or eurofxref.csv, unzipped)")


def event_id(day: str, currency: str) -> str:
    """The id of the ECB's rate of `currency` on `day` (YYYY-MM-DD)."""
    return f"ecb:{day}:EUR/{currency}"


def plain_rate(text: str) -> str:
    """A decimal without trailing zeros (`168.10` -> `168.1`, `2.000` -> `2`)."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _day(text: str) -> str | None:
    """`2024-06-14` or `14 June 2024` as YYYY-MM-DD; None if neither."""
    if m := _ISO_DATE.fullmatch(text):
        return text
    if (m := _DAILY_DATE.fullmatch(text)) and m[2] in MONTHS:
        return f"{m[3]}-{MONTHS[m[2]]:02d}-{int(m[1]):02d}"
    return None


class EcbSource(SourceBase):
    """ECB reference rate files. There are no deliveries: the ECB publishes files."""

    name = "ecb"
    namespace = "ecb:"  # its ids are the ECB's days and pairs: no other channel takes them
    max_line = MAX_LINE  # an fx.rate is a short line
    translates = True  # each line is written here, by orjson, from the file's cells
    imports = "fx"
    import_help = """
    Record the ECB's euro reference rates from FILE (eurofxref-hist.csv or the daily
    eurofxref.csv as published, unzipped; - for stdin) as fx.rate events.

    Each rate's id is its day and pair (ecb:2024-06-14:EUR/USD), so importing a newer
    file records only the new days. A USD (or any) ledger converts through EUR: a rate
    X->USD is found as X->EUR->USD. Columns of currencies ISO 4217 no longer lists are
    counted as ignored. Exit status 1 if any rate was rejected.
    """

    def parse(self, data: Iterable[bytes], lookup: Lookup | None = None
              ) -> Iterator[Line | Rejected | Ignored]:
        """One canonical `fx.rate` line per rate, numbered by the file line it is on (the
        ECB's files need nothing learned before: `lookup` is unused)."""
        currencies: list[str] | None = None
        for number, raw in enumerate(data, 1):
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8", "replace").strip()
            if not text:
                continue
            cells = [cell.strip() for cell in text.split(",")]
            if cells and cells[-1] == "":
                cells.pop()  # the ECB ends every line with a comma
            if currencies is None:
                if not cells or cells[0] != "Date" or len(cells) < 2:
                    yield Rejected(number, "-", HEADER_HINT, raw.rstrip(b"\r\n"))
                    return
                currencies = cells[1:]
                continue
            yield from self._day(number, raw, cells, currencies)

    def _day(self, number: int, raw: bytes, cells: list[str], currencies: list[str]
             ) -> Iterator[Line | Rejected | Ignored]:
        day = _day(cells[0])
        if day is None:
            yield Rejected(number, "-", f"date: not a date of the ECB's (2024-06-14 or "
                           f"14 June 2024): {cells[0][:40]!r}", raw.rstrip(b"\r\n"))
            return
        if len(cells) - 1 > len(currencies):
            yield Rejected(number, "-", f"{len(cells) - 1} rates for {len(currencies)} "
                           "currencies in the header", raw.rstrip(b"\r\n"))
            return
        for currency, value in zip(currencies, cells[1:], strict=False):
            if value in MISSING:
                continue
            if not is_active(currency):
                yield Ignored(number)
                continue
            rate = plain_rate(value) if _DECIMAL.fullmatch(value) else value
            yield number, orjson.dumps({
                "event_id": event_id(day, currency), "type": FX_RATE,
                "effective_at": f"{day}T00:00:00Z", "base": "EUR", "quote": currency,
                "rate": rate,
            })

    def delivery(self, body: bytes, headers: Mapping[str, str],
                 lookup: Lookup | None = None) -> Delivery:
        raise RefusedDelivery("the ECB publishes files: use `revledger import fx FILE`")
