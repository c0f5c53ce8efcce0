"""Subscription periods from a CSV file (a spreadsheet, a billing export, the dbt
mrr-playbook seed) as canonical events.

One row is one subscription period: a customer, a start, an end (empty: still running)
and the amount per billing interval; optionally a subscription id, plan, currency,
interval, interval count, quantity and attribute columns. A row becomes a
`subscription.started` at its start, a `subscription.cancelled` at its end, and a
`customer.updated` with its attributes at its start when it has attribute columns.

Every event id is derived from the event's content (`<namespace>:<digest>`), so importing
the same file again records nothing, and a corrected file records only what changed: a
corrected row's events are new, an unchanged row's are duplicates. An id the ledger has
voided (its row disappeared once, under `--sync`, then came back) is retired: the row's
event takes the next id of the series (`<id>.2`, `<id>.3`, ...), deterministically.

Pure: no store. The service reads what the ledger holds and voids what the file no
longer has (`services.imports`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import orjson

from ledger.events import InvalidEvent, parse_event
from ledger.feed import Rejected
from ledger.instants import utc_instant
from ledger.kinds import CANCELLED, CUSTOMER_UPDATED, STARTED
from ledger.sources.base import Delivery, Ignored, Line, Lookup, RefusedDelivery, SourceBase
from ledger.text import printable


@dataclass(frozen=True)
class Layout:
    """Which column holds what, and what a column left out means. Only the customer,
    start and amount columns must exist; the others are read when the file has them."""

    customer: str = "customer_id"
    start: str = "start_date"
    end: str = "end_date"
    amount: str = "amount"
    subscription: str = "subscription_id"  # without it, each row is its own subscription
    plan: str = "plan"
    currency: str = "currency"
    interval: str = "interval"
    interval_count: str = "interval_count"
    quantity: str = "quantity"
    attributes: tuple[str, ...] = ()  # each becomes a customer attribute of that name
    end_inclusive: bool = False  # the end is the last day paid, not the first day unpaid
    default_plan: str = "default"
    default_currency: str | None = None  # None: the ledger's reporting currency
    default_interval: str = "month"
    namespace: str = "csv"  # event ids start with it; --sync voids only within it
    named: frozenset[str] = frozenset()  # fields whose column was named: it must exist


COLUMNS = ("customer", "start", "end", "amount", "subscription", "plan", "currency",
           "interval", "interval_count", "quantity")  # the fields a column holds

# Presets for common exports. The dbt mrr-playbook seed: `end_date` exclusive (the first
# month no longer paid), `monthly_amount` per month, in US dollars.
PRESETS: dict[str, Layout] = {
    "mrr-playbook": Layout(amount="monthly_amount", default_plan="playbook",
                           default_currency="USD"),
}

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_WHOLE = re.compile(r"[0-9]+", re.ASCII)


class BadRow(ValueError):
    """A row that cannot be read; its text names the column and what was wrong."""


def looks_like_csv(first_line: bytes) -> bool:
    """Whether a feed's first line is a CSV header rather than a JSON object: what
    `ingest` checks so that a spreadsheet is pointed at `import csv`."""
    text = first_line.strip().lstrip(b"\xef\xbb\xbf")
    return bool(text) and not text.startswith((b"{", b"[")) and b"," in text


def instant(text: str, column: str, *, next_day: bool = False) -> str:
    """A date (00:00Z that day, or the next with `next_day`) or an RFC 3339 timestamp."""
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
            if next_day:
                day += timedelta(days=1)
        except (ValueError, OverflowError):
            raise BadRow(f"{column}: not a date: {text!r}") from None
        return f"{day.isoformat()}T00:00:00.000000Z"
    try:
        return utc_instant(text)
    except ValueError:
        raise BadRow(f"{column}: {text!r} is neither a date (YYYY-MM-DD) nor an RFC 3339 "
                     "timestamp with offset (2024-01-15T08:00:00Z)") from None


def _digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


@dataclass
class PeriodsSource(SourceBase):
    """Subscription periods in CSV, laid out as `layout` says. `retired`: event ids the
    ledger has voided, which a row's event never takes again. After `parse`, `emitted`
    holds every event id the file stands for (what `--sync` keeps). Its command, `import
    csv`, has options of its own (the layout) and a service of its own (`--sync`)."""

    layout: Layout = field(default_factory=Layout)
    retired: Collection[str] = frozenset()
    emitted: set[str] = field(default_factory=set)
    rows: int = 0

    name = "csv"

    def parse(self, data: Iterable[bytes],
              lookup: Lookup | None = None) -> Iterator[Line | Rejected | Ignored]:
        """Each good row's events as canonical lines numbered by the row (the header is
        row 1, as in a spreadsheet); a bad row is one `Rejected` naming the column and
        the reason, and none of its events is emitted. `RefusedDelivery` when the file
        itself cannot be read (not UTF-8, a required column missing)."""
        text = codecs.iterdecode(data, "utf-8-sig")
        reader = csv.reader(_decoded(text))
        header = next(reader, None)
        if header is None:
            return
        columns = self._columns([name.strip() for name in header])
        seen: dict[str, int] = {}  # rows without a subscription id: identical ones so far
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            self.rows += 1
            row = {key: cells[i].strip() if i < len(cells) else "" for key, i in columns.items()}
            try:
                if len(cells) != len(header):  # a value's comma unquoted, a cell lost
                    raise BadRow(f"{len(cells)} cells where the header has {len(header)} "
                                 "(quote a value that holds a comma)")
                events = self._events(row, seen)
                for event in events:
                    parse_event(event)  # the whole row is good, or none of it is emitted
            except (BadRow, InvalidEvent) as exc:
                reason = exc.reason if isinstance(exc, InvalidEvent) else str(exc)
                yield Rejected(number, "-", reason, ",".join(cells).encode())
                continue
            for event in events:
                if event["event_id"] not in self.emitted:
                    self.emitted.add(event["event_id"])
                    yield number, orjson.dumps(event)

    def delivery(self, body: bytes, headers: Mapping[str, str],
                 lookup: Lookup | None = None) -> Delivery:
        raise RefusedDelivery("subscription periods are imported from a file, not posted")

    def _columns(self, header: list[str]) -> dict[str, int]:
        """Each field's column index; the required ones must exist."""
        lay = self.layout
        wanted = {"customer": lay.customer, "start": lay.start, "amount": lay.amount,
                  "end": lay.end, "subscription": lay.subscription, "plan": lay.plan,
                  "currency": lay.currency, "interval": lay.interval,
                  "interval_count": lay.interval_count, "quantity": lay.quantity,
                  **{f"attribute:{name}": name for name in lay.attributes}}
        lowered = {name.lower(): i for i, name in reversed(list(enumerate(header)))}
        found = {}
        for key, name in wanted.items():
            if name in header:
                found[key] = header.index(name)
            elif name.lower() in lowered:
                found[key] = lowered[name.lower()]
            elif key in ("customer", "start", "amount", *lay.named) \
                    or key.startswith("attribute:"):
                option = ("--attribute" if key.startswith("attribute:")
                          else f"--{key.replace('_', '-')}-column")
                raise RefusedDelivery(
                    f"no column {name!r} (the file has: {printable(', '.join(header))}); name the "
                    f"column with {option}, or use a --preset")
        return found

    def _events(self, row: dict[str, str], seen: dict[str, int]) -> list[dict[str, Any]]:
        """The canonical events one row stands for, their ids derived from their content."""
        lay = self.layout
        customer = row["customer"]
        if not customer:
            raise BadRow("customer: empty")
        if not row["start"]:
            raise BadRow("start: empty")
        start = instant(row["start"], "start")
        end = instant(row["end"], "end", next_day=lay.end_inclusive) if row.get("end") else None
        if end is not None and end <= start:
            raise BadRow(f"end: {row['end']} is not after the start {row['start']}"
                         + ("" if lay.end_inclusive else " (the end is the first day not paid)"))
        terms: dict[str, Any] = {
            "plan": row.get("plan") or lay.default_plan,
            "amount": row["amount"],
            "currency": (row.get("currency") or lay.default_currency or "USD").upper(),
            "interval": (row.get("interval") or lay.default_interval).lower(),
        }
        for key in ("interval_count", "quantity"):
            if value := row.get(key):
                if not _WHOLE.fullmatch(value):
                    raise BadRow(f"{key}: not a whole number: {value!r}")
                terms[key] = int(value)
        subscription = row.get("subscription")
        if not subscription:  # each row its own subscription; identical rows apart
            key = _digest({"customer": customer, "start": start, **terms})
            seen[key] = seen.get(key, 0) + 1
            subscription = f"{lay.namespace}:{key}" + (f".{seen[key]}" if seen[key] > 1 else "")
        ids = {"customer_id": customer, "subscription_id": subscription}
        events = []
        attributes = {name: row[f"attribute:{name}"] for name in lay.attributes
                      if row[f"attribute:{name}"]}
        if attributes:
            events.append({"type": CUSTOMER_UPDATED, "effective_at": start,
                           "customer_id": customer, "attributes": attributes})
        events.append({"type": STARTED, "effective_at": start, **ids, **terms})
        if end is not None:
            events.append({"type": CANCELLED, "effective_at": end, **ids})
        return [{"event_id": self._id(event), **event} for event in events]

    def _id(self, event: dict[str, Any]) -> str:
        """`<namespace>:<digest of the content>`, or the next of its series if retired."""
        base = f"{self.layout.namespace}:{_digest(event)}"
        candidate, n = base, 1
        while candidate in self.retired:
            n += 1
            candidate = f"{base}.{n}"
        return candidate


def _decoded(text: Iterator[str]) -> Iterator[str]:
    """The decoded text, a file that is not UTF-8 refused as a whole (with its offset)."""
    try:
        yield from text
    except UnicodeDecodeError as exc:
        raise RefusedDelivery(f"not UTF-8 text (byte {exc.start} of a chunk); save the "
                              "file as CSV UTF-8") from None


def layout(preset: str | None = None, **columns: Any) -> Layout:
    """A preset (or the default layout) with the columns and defaults given overriding it."""
    base = PRESETS[preset] if preset else Layout()
    given = {k: v for k, v in columns.items() if v is not None}
    return replace(base, **given, named=frozenset(given) & set(COLUMNS))
