"""Holding the stored projection to the reference: what `verify` compares.

For each customer, a chunk of customers at a time (memory grows with customers, not
events), the events are read as stored and folded by `projections.reference`, which shares
no code with the fast path; its fold after each of the customer's recordings is compared
with the rows the view holds at that position (what `--known-at` reads), at every
position where the view's rows change as well. The current rows are also compared with
the query columns stored for the view's position (what every other query reads).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import groupby
from operator import itemgetter
from typing import Any

from ledger.kinds import VOID
from projections import reference
from projections.columns import UNREADABLE
from projections.engine import MRRIndex
from projections.facts import decode_fact
from projections.fold import visible
from projections.projection import MRRProjection
from projections.rates import Rates, quotes

CHUNK = 1000  # customers compared at a time
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Difference:
    customer: str
    position: int | None  # the first ledger position whose rows differ; None: the columns
    what: str


@dataclass
class Comparison:
    customers: int = 0
    rows: int = 0  # stored rows compared
    versions: int = 0  # versions (a customer's recordings) compared
    columns: bool = False  # whether query columns were stored and compared
    difference: Difference | None = None


def compare(projection: MRRProjection, stop: Callable[[], bool] = lambda: False
            ) -> Comparison:
    """The view (caught up to its position) against the reference, customer by customer,
    stopping at the first difference, or when `stop()` says so between chunks of
    customers (the events checked beside it proved false: the comparison is moot)."""
    position = projection.position
    out = Comparison()
    columns = _stored_columns(projection, position, out)
    customers = groupby(projection.events.iter_customer_events(position), key=itemgetter(0))
    while chunk := [(c, [r[1:] for r in rows]) for c, rows in _take(customers, CHUNK)]:
        if stop():
            return out
        stored = _by_customer(projection.view.stored_of([c for c, _ in chunk]))
        for customer, rows in chunk:
            out.customers += 1
            events = [e for p, state in sorted(rows) if (e := reference.stored_event(p, state))]
            steps, attributes, paid = stored.get(customer, ([], [], []))
            out.rows += len(steps) + len(attributes) + len(paid)
            versions = reference.versions(events)
            out.versions += len(versions)
            difference = (_events_problem(customer, events)
                          or _versions_problem(customer, versions, steps, attributes, paid)
                          or _columns_problem(customer, versions[-1][1], columns))
            if difference:
                out.difference = difference
                return out
    if (difference := _rates_problem(projection, position)) is not None:
        out.difference = difference
        return out
    if projection.view.customer_count() != out.customers:
        out.difference = Difference("-", None, "rows of customers with no events")
    elif columns is not None and len(columns[0]) != out.customers:
        out.difference = Difference("-", None, "query columns of customers with no events")
    return out


RATE_INSTANTS = 400  # instants at which each currency's rate in force is compared, at most


def _rates_problem(projection: MRRProjection, position: int) -> Difference | None:
    """The rate in force (`projections.rates`, what every figure converts at) equals the
    reference's for every currency of the ledger, at the instants where rates change (a
    sample of them, evenly spread, for a long history): the same rate, or no rate on both
    sides."""
    rows = list(projection.events.iter_rate_events(position))
    events = [e for p, state in rows if (e := reference.stored_event(p, state))]
    held = reference.visible(events)
    facts = [f for p, state in rows if (f := decode_fact(p, state))]
    fast = Rates(quotes(visible(facts)))
    reporting = projection.app.reporting_currency()
    currencies = sorted({c for e in held for c in (e.record["base"], e.record["quote"])})
    instants = sorted({e.effective_at for e in held})
    step = max(1, len(instants) // RATE_INSTANTS)
    for last in instants[::step]:
        bound = (datetime.fromisoformat(last[:-1]) + timedelta(microseconds=1)).isoformat(
            timespec="microseconds") + "Z"
        for currency in currencies:
            if (_rate_or_none(reference.rate, held, currency, reporting, last)
                    != _rate_or_none(fast.rate, currency, reporting, bound)):
                return Difference("-", None, f"exchange rate {currency}->{reporting} at {last}")
    return None


def _rate_or_none(rate: Any, *args: Any) -> Fraction | None:
    try:
        return rate(*args)
    except LookupError:  # the reference's NoRate, the fast path's MissingRate
        return None


def _take(groups: Iterator[tuple[str, Any]], n: int) -> Iterator[tuple[str, list]]:
    for _, (customer, rows) in zip(range(n), groups, strict=False):
        yield customer, list(rows)


def _by_customer(tables: tuple[list[tuple], list[tuple], list[tuple]]
                 ) -> dict[str, tuple[list, list, list]]:
    out: dict[str, tuple[list, list, list]] = {}
    for i, rows in enumerate(tables):
        for row in rows:
            out.setdefault(row[0], ([], [], []))[i].append(row[1:])
    return out


def _events_problem(customer: str, events: list[reference.Event]) -> Difference | None:
    """Each event filed under this customer is its own, or voids one of its own."""
    own = {e.event_id for e in events if e.type != VOID}
    for e in events:
        if e.type == VOID:
            mine = e.record.get("voids") in own
        else:
            mine = e.record.get("customer_id") == customer
        if not mine:
            return Difference(customer, e.position, f"event {e.event_id} is not the customer's")
    return None


def _versions_problem(customer: str, versions: list[tuple[int, reference.History]],
                      steps: list, attributes: list, paid: list) -> Difference | None:
    """The rows held at each position where either side changes equal the reference's
    fold of the recordings made by then."""
    versions = list(versions)
    positions = {p for p, _ in versions}
    for row in steps:  # (currency, effective_at, known_from, known_until, mrr)
        positions.update(p for p in row[2:4] if p is not None)
    for row in attributes:
        positions.update(p for p in row[1:3] if p is not None)
    positions.update(p for row in paid for p in row[:2] if p is not None)
    expected: reference.History | None = None
    for position in sorted(positions):
        while versions and versions[0][0] <= position:
            expected = versions.pop(0)[1]
        native: dict[str, list] = {}
        for r in steps:
            if _holds(r[2], r[3], position):
                native.setdefault(r[0], []).append((r[1], Fraction(r[4]) / 100))
        if native != (expected.steps if expected else {}):
            return Difference(customer, position, "MRR steps")
        held = [row for row in attributes if _holds(row[1], row[2], position)]
        if [(r[0], json.loads(r[3])) for r in held] != (expected.attributes if expected else []):
            return Difference(customer, position, "attribute steps")
        first = [row[2] for row in paid if _holds(row[0], row[1], position)]
        if first != ([expected.first_paid] if expected else []):
            return Difference(customer, position, "first paid instant")
    return None


def _holds(known_from: int, known_until: int | None, position: int) -> bool:
    return known_from <= position and (known_until is None or position < known_until)


Columns = tuple[dict[str, int], MRRIndex]


def _stored_columns(projection: MRRProjection, position: int, out: Comparison
                    ) -> Columns | None:
    data = projection.view.load_snapshot(position)
    if data is None:
        return None
    out.columns = True
    try:
        index = MRRIndex.from_bytes(data)
    except UNREADABLE:
        return {}, MRRIndex.from_rows([], [], [])  # unreadable: differs for every customer
    return {name: i for i, name in enumerate(index.customers)}, index


def _columns_problem(customer: str, expected: reference.History,
                     columns: Columns | None) -> Difference | None:
    """The customer's current rows (`expected`: the reference's last version), as the
    query columns hold them."""
    if columns is None:
        return None
    numbers, index = columns
    i = numbers.get(customer)
    if i is None or _at(int(index.first_paid[i])) != expected.first_paid:
        return Difference(customer, None, "query columns: first paid instant")
    native = {}
    for currency, held in index.mrr.items():
        rows = range(held.offsets[i], held.offsets[i + 1])
        units = index.units[currency]
        if rows:
            native[currency] = [(_at(int(held.at[r])),
                                 Fraction(int(units[r]), index.denominator) / 100) for r in rows]
    if native != expected.steps:
        return Difference(customer, None, "query columns: MRR steps")
    rows = range(index.attr.offsets[i], index.attr.offsets[i + 1])
    attributes = [(_at(int(index.attr.at[r])),
                   {key: values[codes[r]] for key, (codes, values) in index.attr_codes.items()
                    if codes[r] >= 0}) for r in rows]
    if attributes != expected.attributes:
        return Difference(customer, None, "query columns: attribute steps")
    return None


def _at(microseconds: int) -> str | None:
    """Microseconds since the epoch as fixed-width UTC text (None for "never")."""
    if microseconds == 2**63 - 1:
        return None
    return (_EPOCH + timedelta(microseconds=microseconds)).isoformat(
        timespec="microseconds") + "Z"
