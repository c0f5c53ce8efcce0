"""The query engine: the MRR view as columns, so a metric over 100k customers is a few
vectorised passes instead of a Python loop per customer.

Exactness: every MRR in the view is a fraction of cents. The engine scales them all to
one common denominator `D` (the lcm of the view's denominators), so each is an integer
number of 1/D cents; sums of integers are exact. When the largest possible sum could
overflow int64 the columns hold Python integers instead (slower, still exact).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import numpy as np
import orjson

from ledger.batches import batched
from projections.movements import Movement
from projections.movements import split as movement_split
from projections.nrr import Retention
from projections.nrr import split as retention_split
from projections.periods import END_OF_TIME, Period, month_end, month_label, month_start, months

NEVER = np.iinfo(np.int64).max
_AFTER_9999 = "10000-01-01T00:00:00"  # END_OF_TIME, which numpy's datetimes can hold
CHUNK = 20_000
# What `MRRIndex.from_bytes` raises for a damaged blob (cut short, overwritten, another file)
UNREADABLE = (ValueError, LookupError, OSError, EOFError, zipfile.BadZipFile)
# What `MRRIndex.from_rows` raises for rows edited behind the ledger's back (an `mrr` of
# "abc" or "1/0", say)
UNREADABLE_ROWS = (ValueError, LookupError, TypeError, ArithmeticError)


def instants(texts: Sequence[str | None]) -> np.ndarray:
    """Fixed-width UTC texts as int64 microseconds since the epoch; None as NEVER."""
    values = np.array([(_AFTER_9999 if t == END_OF_TIME else t[:-1]) if t else "NaT"
                       for t in texts], dtype="datetime64[us]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = NEVER
    return out


def instant(text: str) -> int:
    return int(instants([text])[0])


@dataclass
class _Steps:
    """Per-customer step functions over time, flattened: customer i owns rows
    offsets[i]:offsets[i+1], sorted by time."""

    offsets: np.ndarray
    at: np.ndarray

    def last_before(self, bound: int) -> tuple[np.ndarray, np.ndarray]:
        """(row index, has one) of each customer's last step strictly before `bound`."""
        before = np.concatenate(([0], np.cumsum(self.at < bound)))
        counts = before[self.offsets[1:]] - before[self.offsets[:-1]]
        return self.offsets[:-1] + counts - 1, counts > 0


class MRRIndex:
    """Column form of the MRR view. Build it `from_rows` (the view's rows) or `from_bytes`
    (a stored snapshot of the columns, much faster to load)."""

    def __init__(
        self,
        customers: list[str],
        first_paid: np.ndarray,
        mrr: _Steps,
        units: np.ndarray,
        denominator: int,
        attr: _Steps,
        attr_codes: dict[str, tuple[np.ndarray, list[str]]],
    ) -> None:
        self.customers = customers
        self.first_paid = first_paid
        self.mrr = mrr
        self.units = units
        self.denominator = denominator
        self.attr = attr
        # per attribute key: each attribute step's value as a code (-1: key not set), and
        # the values by code
        self.attr_codes = attr_codes

    @classmethod
    def from_rows(
        cls,
        customers: Iterable[tuple[str, str | None]],
        steps: Iterable[tuple[str, str, str]],
        attributes: Iterable[tuple[str, str, str]],
    ) -> MRRIndex:
        """From view rows: (customer, first paid), (customer, instant, mrr) and (customer,
        instant, attributes JSON), each sorted by customer (then time) and read in that
        order, a chunk at a time, so memory holds columns, not rows."""
        columns = Columns()
        for customer, first_paid in customers:
            columns.customer(customer, first_paid)
        position = {c: i for i, c in enumerate(columns.names)}
        for chunk in batched(steps, CHUNK):
            columns.steps(owners(position, chunk), [r[1] for r in chunk], [r[2] for r in chunk])
        for chunk in batched(attributes, CHUNK):
            columns.attributes(owners(position, chunk), [r[1] for r in chunk],
                               [r[2] for r in chunk])
        return columns.index()

    def to_bytes(self) -> bytes | None:
        """The columns as one npz blob; None when MRRs need Python integers."""
        if self.units.dtype == object:
            return None
        out = io.BytesIO()
        np.savez(
            out,
            customers=np.array(orjson.dumps(self.customers)),
            first_paid=self.first_paid,
            mrr_offsets=self.mrr.offsets,
            mrr_at=self.mrr.at,
            units=self.units,
            denominator=np.array(str(self.denominator)),
            attr_offsets=self.attr.offsets,
            attr_at=self.attr.at,
            attr_values=np.array(orjson.dumps({k: v for k, (_, v) in self.attr_codes.items()})),
            **{f"attr_codes_{i}": codes for i, (codes, _) in enumerate(self.attr_codes.values())},
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MRRIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(
                orjson.loads(z["customers"].item()),
                z["first_paid"],
                _Steps(z["mrr_offsets"], z["mrr_at"]),
                z["units"],
                int(z["denominator"].item()),
                _Steps(z["attr_offsets"], z["attr_at"]),
                {key: (z[f"attr_codes_{i}"], values) for i, (key, values)
                 in enumerate(orjson.loads(z["attr_values"].item()).items())},
            )

    def fraction(self, units: Any) -> Fraction:
        """Units of 1/denominator cents, as an exact number of cents."""
        return Fraction(int(units), self.denominator)

    def mrr_at(self, bound: str) -> np.ndarray:
        """Each customer's MRR (in 1/D cents) counting events effective before `bound`."""
        rows, has = self.mrr.last_before(instant(bound))
        zero = np.zeros(len(self.customers), dtype=self.units.dtype)
        if len(self.units) == 0:
            return zero
        return np.where(has, self.units[np.maximum(rows, 0)], zero)

    def total(self, bound: str) -> tuple[Fraction, int]:
        values = self.mrr_at(bound)
        return self.fraction(values.sum()), int((values > 0).sum())

    def attribute_values(self, key: str) -> list[str]:
        """Every value any customer ever had for attribute `key` (none if never set)."""
        return list(self.attr_codes.get(key, (None, []))[1])

    def attribute_is(self, key: str, value: str, bound: str) -> np.ndarray:
        """Which customers have attribute `key` = `value` before `bound`."""
        codes, values = self.attr_codes.get(key, (None, []))
        if codes is None or value not in values:
            return np.zeros(len(self.customers), dtype=bool)
        rows, has = self.attr.last_before(instant(bound))
        return has & (codes[np.maximum(rows, 0)] == values.index(value))

    def nrr(
        self,
        start: str,
        end: str,
        cohort: Period | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> Retention:
        m0, m1 = self.mrr_at(start), self.mrr_at(end)
        return self._retention(m0, m1, self._cohort(m0, start, cohort, segment))

    def cohort(
        self,
        start: str,
        end: str,
        cohort: Period | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(which customers are in the NRR cohort, every customer's MRR at start and at
        end, in units of 1/denominator cents): what `nrr` sums, customer by customer."""
        m0, m1 = self.mrr_at(start), self.mrr_at(end)
        return self._cohort(m0, start, cohort, segment), m0, m1

    def nrr_by(
        self,
        start: str,
        end: str,
        key: str,
        cohort: Period | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> list[tuple[str | None, Retention]]:
        """NRR/GRR per value of attribute `key` at `start`, values in order, then (None)
        the customers without it, each group as `nrr` with `key=value` added to the
        segment selects it: the same base, the same sums. Groups with no customer left out."""
        m0, m1 = self.mrr_at(start), self.mrr_at(end)
        base = self._cohort(m0, start, cohort, segment)
        groups: list[tuple[str | None, Retention]] = []
        unset = base.copy()
        for value in sorted(self.attribute_values(key)):
            has = self.attribute_is(key, value, start)
            unset &= ~has
            if (base & has).any():
                groups.append((value, self._retention(m0, m1, base & has)))
        if unset.any():
            groups.append((None, self._retention(m0, m1, unset)))
        return groups

    def _cohort(self, m0: np.ndarray, start: str, cohort: Period | None,
                segment: Mapping[str, str] | None) -> np.ndarray:
        """The NRR base: paying at `start`, of the cohort, with every segment pair then."""
        base = m0 > 0
        if cohort:
            lo, hi = instant(cohort.start), instant(cohort.end)
            base &= (self.first_paid >= lo) & (self.first_paid < hi)
        for key, value in (segment or {}).items():
            base &= self.attribute_is(key, value, start)
        return base

    def _retention(self, m0: np.ndarray, m1: np.ndarray, base: np.ndarray) -> Retention:
        m0, m1 = m0[base], m1[base]
        lost, grew, shrank = retention_split(m0, m1)
        return Retention(
            customers=int(base.sum()),
            starting_mrr=self.fraction(m0.sum()),
            ending_mrr=self.fraction(m1.sum()),
            expansion=self.fraction((m1[grew] - m0[grew]).sum()),
            contraction=self.fraction((m0[shrank] - m1[shrank]).sum()),
            churn=self.fraction(m0[lost].sum()),
            churned=int(lost.sum()),
        )

    def expanded(self, start: str, end: str) -> list[str]:
        """The customers paying at `start` whose MRR grew by `end` (the NRR cohort's
        expansion), in customer order."""
        m0, m1 = self.mrr_at(start), self.mrr_at(end)
        _, grew, _ = retention_split(m0, m1)
        return [self.customers[i] for i in np.flatnonzero(grew & (m0 > 0))]

    def movements(self, first: date, last: date) -> list[Movement]:
        return [self._movement(*step) for step in self.month_ends(first, last)]

    def month_ends(
        self, first: date, last: date
    ) -> Iterator[tuple[date, np.ndarray, np.ndarray, np.ndarray]]:
        """Each month of `first`..`last` as (month, every customer's MRR at the end of the
        month before, at the month's end, whether it paid at an earlier month end): what a
        month's movements, summed or customer by customer, are read from."""
        previous = self.mrr_at(month_start(first))
        paid = self._paid_at_a_month_end(instant(month_start(first)))
        for month in months(first, last):
            current = self.mrr_at(month_end(month))
            yield month, previous, current, paid
            paid = paid | (current > 0)
            previous = current

    def movement_cells(
        self, first: date, last: date
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Each month's movements, by kind, of every customer (units of 1/denominator
        cents): what `movements` adds up, and what a restatement compares customer by
        customer."""
        for month, p, q, paid in self.month_ends(first, last):
            yield month_label(month), self._cells(p, q, paid)

    def attributes_at(self, bound: str) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Each customer's attributes before `bound`: per key, each customer's value as a
        code (-1: not set) and the values by code."""
        rows, has = self.attr.last_before(instant(bound))
        out = {}
        for key, (codes, values) in self.attr_codes.items():
            picked = codes[np.maximum(rows, 0)] if len(codes) else np.full(len(rows), -1)
            out[key] = (np.where(has, picked, -1), values)
        return out

    def _paid_at_a_month_end(self, bound: int) -> np.ndarray:
        """Which customers had MRR > 0 at the end of some month, that month's end at or
        before `bound`: straight from the steps, however many months lie between. A step
        holds at the first month end after it unless the next step comes first."""
        at, offsets = self.mrr.at, self.mrr.offsets
        if len(at) == 0:
            return np.zeros(len(self.customers), dtype=bool)
        following = np.append(at[1:], NEVER)
        following[offsets[1:][offsets[1:] > offsets[:-1]] - 1] = NEVER  # last of a customer
        month = at.astype("datetime64[us]").astype("datetime64[M]")
        boundary = (month + 1).astype("datetime64[us]").astype(np.int64)
        held = (self.units > 0).astype(bool) & (boundary <= bound) & (following >= boundary)
        counts = np.concatenate(([0], np.cumsum(held)))
        return (counts[offsets[1:]] - counts[offsets[:-1]]) > 0

    def _cells(self, p: np.ndarray, q: np.ndarray, paid: np.ndarray) -> dict[str, np.ndarray]:
        new, grew, shrank, lost, back = movement_split(p, q, paid)
        zero = np.zeros_like(p)
        return {
            "new": np.where(new, q, zero),
            "expansion": np.where(grew, q - p, zero),
            "contraction": np.where(shrank, p - q, zero),
            "churn": np.where(lost, p, zero),
            "reactivation": np.where(back, q, zero),
        }

    def _movement(self, month: date, p: np.ndarray, q: np.ndarray, paid: np.ndarray) -> Movement:
        cells = self._cells(p, q, paid)
        return Movement(month_label(month), **{kind: self.fraction(cell.sum())
                                                for kind, cell in cells.items()})


class Columns:
    """An index's columns, gathered a chunk of rows at a time with customers in order:
    instants are converted chunk by chunk, so memory holds columns, not rows."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.paid: list[str | None] = []
        self.mrr_owners: list[np.ndarray] = []
        self.mrr_at: list[np.ndarray] = []
        self.numerators: list[int] = []
        self.denominators: list[int] = []
        self.attr_owners: list[np.ndarray] = []
        self.attr_at: list[np.ndarray] = []
        self.attr_values: list[dict[str, str]] = []

    def customer(self, name: str, first_paid: str | None) -> None:
        """The next customer: the rows of later chunks name it by its number."""
        self.names.append(name)
        self.paid.append(first_paid)

    def steps(self, owners: np.ndarray, at: list[str], mrr: list[str]) -> None:
        self.mrr_owners.append(owners)
        self.mrr_at.append(instants(at))
        for text in mrr:
            numerator, _, denominator = text.partition("/")
            self.numerators.append(int(numerator))
            self.denominators.append(int(denominator or 1))

    def attributes(self, owners: np.ndarray, at: list[str], values: list[str]) -> None:
        self.attr_owners.append(owners)
        self.attr_at.append(instants(at))
        self.attr_values.extend(orjson.loads(text) for text in values)

    def index(self) -> MRRIndex:
        denominator = math.lcm(1, *set(self.denominators))
        units = [n * (denominator // d)
                 for n, d in zip(self.numerators, self.denominators, strict=True)]
        safe = max(units, default=0) * max(len(self.names), 1) < 2**62
        return MRRIndex(
            self.names,
            instants(self.paid),
            _step_table(len(self.names), self.mrr_owners, self.mrr_at),
            np.array(units, dtype=np.int64 if safe else object),
            denominator,
            _step_table(len(self.names), self.attr_owners, self.attr_at),
            _attribute_codes(self.attr_values),
        )


def _attribute_codes(steps: list[dict[str, str]]) -> dict[str, tuple[np.ndarray, list[str]]]:
    out = {}
    for key in sorted({k for attributes in steps for k in attributes}):
        ids: dict[str, int] = {}
        codes = [ids.setdefault(a[key], len(ids)) if key in a else -1 for a in steps]
        out[key] = (np.array(codes, dtype=np.int32), list(ids))
    return out


def owners(position: dict[str, int], chunk: Sequence[tuple]) -> np.ndarray:
    """The number of each row's customer (its first field)."""
    return np.fromiter((position[row[0]] for row in chunk), dtype=np.int64, count=len(chunk))


def _step_table(customers: int, owners: list[np.ndarray], at: list[np.ndarray]) -> _Steps:
    """Rows owned by customer i (in customer order) are offsets[i]:offsets[i+1]."""
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    offsets = np.searchsorted(owner, np.arange(customers + 1), side="left")
    return _Steps(offsets, np.concatenate(at) if at else np.zeros(0, dtype=np.int64))
