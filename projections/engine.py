"""The query engine: the MRR view as columns, so a metric over 100k customers is a few
vectorised passes instead of a Python loop per customer.

Exactness: every MRR in the view is a fraction of cents of its currency. The engine scales
them all to one common denominator `D` (the lcm of the view's denominators), so each is an
integer number of 1/D cents; sums of integers are exact, and each currency's sum is
converted at its rate once (`projections.valuation`). When the largest possible sum could
overflow int64 the columns hold Python integers instead (slower, still exact).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import cache

import numpy as np
import orjson

from ledger.batches import batched
from projections import valuation
from projections.movements import Movement
from projections.movements import split as movement_split
from projections.nrr import Retention
from projections.periods import END_OF_TIME, Period, month_end, month_label, month_start, months
from projections.rates import Rates

NEVER = np.iinfo(np.int64).max
_AFTER_9999 = "10000-01-01T00:00:00"  # END_OF_TIME, which numpy's datetimes can hold
CHUNK = 20_000
Native = dict[str, np.ndarray]  # currency -> each customer's MRR in it
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
    """Column form of the MRR view: each currency's steps apart (contract v2), converted
    into the reporting currency at the rates a figure asks for. Build it `from_rows` (the
    view's rows) or `from_bytes` (a stored snapshot of the columns, much faster to load);
    `priced` gives it the ledger's rates and reporting currency."""

    def __init__(
        self,
        customers: list[str],
        first_paid: np.ndarray,
        mrr: dict[str, _Steps],
        units: dict[str, np.ndarray],
        denominator: int,
        attr: _Steps,
        attr_codes: dict[str, tuple[np.ndarray, list[str]]],
    ) -> None:
        self.customers = customers
        self.first_paid = first_paid
        self.mrr = mrr  # per currency: each customer's steps in it
        self.units = units  # per currency: each step's MRR in 1/D cents of it
        self.denominator = denominator
        self.attr = attr
        # per attribute key: each attribute step's value as a code (-1: key not set), and
        # the values by code
        self.attr_codes = attr_codes
        self.rates = Rates()
        self.reporting = "USD"  # the ledgers' default, until `priced` says

    def priced(self, rates: Rates, reporting: str) -> MRRIndex:
        """This index answering in `reporting`, converting at `rates`."""
        self.rates, self.reporting = rates, reporting
        return self

    @classmethod
    def from_rows(
        cls,
        customers: Iterable[tuple[str, str | None]],
        steps: Iterable[tuple[str, str, str, str]],
        attributes: Iterable[tuple[str, str, str]],
    ) -> MRRIndex:
        """From view rows: (customer, first paid), (customer, currency, instant, mrr) and
        (customer, instant, attributes JSON), each sorted by customer (then currency, then
        time) and read in that order, a chunk at a time, so memory holds columns, not rows."""
        columns = Columns()
        for customer, first_paid in customers:
            columns.customer(customer, first_paid)
        position = {c: i for i, c in enumerate(columns.names)}
        for chunk in batched(steps, CHUNK):
            columns.steps(owners(position, chunk), [r[1] for r in chunk], [r[2] for r in chunk],
                          [r[3] for r in chunk])
        for chunk in batched(attributes, CHUNK):
            columns.attributes(owners(position, chunk), [r[1] for r in chunk],
                               [r[2] for r in chunk])
        return columns.index()

    def to_bytes(self) -> bytes | None:
        """The columns as one npz blob; None when MRRs need Python integers."""
        if any(units.dtype == object for units in self.units.values()):
            return None
        out = io.BytesIO()
        currencies = list(self.mrr)
        np.savez(
            out,
            customers=np.array(orjson.dumps(self.customers)),
            first_paid=self.first_paid,
            currencies=np.array(orjson.dumps(currencies)),
            denominator=np.array(str(self.denominator)),
            attr_offsets=self.attr.offsets,
            attr_at=self.attr.at,
            attr_values=np.array(orjson.dumps({k: v for k, (_, v) in self.attr_codes.items()})),
            **{f"attr_codes_{i}": codes for i, (codes, _) in enumerate(self.attr_codes.values())},
            **{f"mrr_offsets_{i}": self.mrr[c].offsets for i, c in enumerate(currencies)},
            **{f"mrr_at_{i}": self.mrr[c].at for i, c in enumerate(currencies)},
            **{f"units_{i}": self.units[c] for i, c in enumerate(currencies)},
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MRRIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            currencies = orjson.loads(z["currencies"].item())
            return cls(
                orjson.loads(z["customers"].item()),
                z["first_paid"],
                {c: _Steps(z[f"mrr_offsets_{i}"], z[f"mrr_at_{i}"])
                 for i, c in enumerate(currencies)},
                {c: z[f"units_{i}"] for i, c in enumerate(currencies)},
                int(z["denominator"].item()),
                _Steps(z["attr_offsets"], z["attr_at"]),
                {key: (z[f"attr_codes_{i}"], values) for i, (key, values)
                 in enumerate(orjson.loads(z["attr_values"].item()).items())},
            )

    def native_at(self, bound: str) -> Native:
        """Each customer's MRR in each currency (in 1/D cents of it), counting events
        effective before `bound`."""
        at = instant(bound)
        out = {}
        for currency, steps in self.mrr.items():
            units = self.units[currency]
            rows, has = steps.last_before(at)
            out[currency] = (np.where(has, units[np.maximum(rows, 0)], 0).astype(units.dtype)
                             if len(units) else np.zeros(len(self.customers), dtype=np.int64))
        return out

    def paying(self, native: Native) -> np.ndarray:
        """Which customers have MRR > 0 (in some currency: every rate is > 0)."""
        out = np.zeros(len(self.customers), dtype=bool)
        for values in native.values():
            out |= values > 0
        return out

    def rate_at(self, bound: str) -> Callable[[str], Fraction]:
        """currency -> its rate into the reporting currency at `bound` (looked up once)."""
        return cache(lambda currency: self.rates.rate(currency, self.reporting, bound))

    def total(self, bound: str) -> tuple[Fraction, int]:
        native = self.native_at(bound)
        return (valuation.total(native, self.rate_at(bound), self.denominator),
                int(self.paying(native).sum()))

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

    def _cohort(self, n0: Native, start: str, cohort: Period | None,
                segment: Mapping[str, str] | None) -> np.ndarray:
        """The NRR base: paying at `start` (in some currency), of the cohort, with every
        segment pair then."""
        base = self.paying(n0)
        if cohort:
            lo, hi = instant(cohort.start), instant(cohort.end)
            base &= (self.first_paid >= lo) & (self.first_paid < hi)
        for key, value in (segment or {}).items():
            base &= self.attribute_is(key, value, start)
        return base

    def nrr(
        self,
        start: str,
        end: str,
        cohort: Period | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> Retention:
        """Classified at constant currency (the end valued at the start's rates), the
        rates' own change apart as `fx_impact` (contract v2)."""
        n0, n1 = self.native_at(start), self.native_at(end)
        return self._retention(n0, n1, self._cohort(n0, start, cohort, segment), start, end)

    def cohort(
        self,
        start: str,
        end: str,
        cohort: Period | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """(which customers are in the NRR cohort; every cohort customer's MRR at start
        at the start's rates, at end at the start's rates (constant currency) and at end
        at the end's rates; their denominator in cents): what `nrr` sums, customer by
        customer (contract v2)."""
        n0, n1 = self.native_at(start), self.native_at(end)
        base = self._cohort(n0, start, cohort, segment)
        n0, n1 = ({c: np.where(base, v, 0) for c, v in n.items()} for n in (n0, n1))
        (m0, c1, m1), scale = valuation.valued(
            [(n0, self.rate_at(start)), (n1, self.rate_at(start)), (n1, self.rate_at(end))],
            len(self.customers))
        return base, m0, c1, m1, self.denominator * scale

    def valued_at(self, bound: str) -> tuple[np.ndarray, int]:
        """Every customer's MRR at `bound` in the reporting currency at that instant's
        rates, and its denominator in cents."""
        (values,), scale = valuation.valued([(self.native_at(bound), self.rate_at(bound))],
                                            len(self.customers))
        return values, self.denominator * scale

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
        n0, n1 = self.native_at(start), self.native_at(end)
        base = self._cohort(n0, start, cohort, segment)
        groups: list[tuple[str | None, Retention]] = []
        unset = base.copy()
        for value in sorted(self.attribute_values(key)):
            has = self.attribute_is(key, value, start)
            unset &= ~has
            if (base & has).any():
                groups.append((value, self._retention(n0, n1, base & has, start, end)))
        if unset.any():
            groups.append((None, self._retention(n0, n1, unset, start, end)))
        return groups

    def _retention(self, n0: Native, n1: Native, base: np.ndarray, start: str, end: str
                   ) -> Retention:
        return valuation.retention({c: v[base] for c, v in n0.items()},
                                   {c: v[base] for c, v in n1.items()},
                                   self.rate_at(start), self.rate_at(end), self.denominator)

    def expanded(self, start: str, end: str) -> list[str]:
        """The customers paying at `start` whose MRR grew by `end` at constant currency
        (the NRR cohort's expansion), in customer order."""
        n0, n1 = self.native_at(start), self.native_at(end)
        base = self._cohort(n0, start, None, None)
        grew = valuation.grew({c: v[base] for c, v in n0.items()},
                              {c: v[base] for c, v in n1.items()}, self.rate_at(start),
                              self.denominator)
        return [self.customers[i] for i in np.flatnonzero(base)[grew]]

    def movements(self, first: date, last: date) -> list[Movement]:
        """Each month's movements: p at the month before's end and its rates, q' the month
        end's MRR at those same rates (the classification), fx = q - q' with q at the
        month end's rates (contract v2)."""
        before = month_start(first)
        previous = self.native_at(before)
        paid = self._paid_at_a_month_end(instant(before))
        out = []
        for month in months(first, last):
            bound = month_end(month)
            current = self.native_at(bound)
            out.append(valuation.movement(month_label(month), previous, current, paid,
                                          self.rate_at(before), self.rate_at(bound),
                                          self.denominator))
            paid = paid | self.paying(current)
            previous, before = current, bound
        return out

    def month_ends(self, first: date, last: date
                   ) -> Iterator[tuple[date, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
        """Each month of `first`..`last` as (month, every customer's MRR at the end of the
        month before at that instant's rates (p), at the month's end at the same rates
        (q'), at the month's end at its own rates (q), whether it paid at an earlier month
        end, and the denominator of the three in cents): what a month's movements,
        customer by customer, are read from (contract v2: p against q' classifies)."""
        before = month_start(first)
        previous = self.native_at(before)
        paid = self._paid_at_a_month_end(instant(before))
        for month in months(first, last):
            bound = month_end(month)
            current = self.native_at(bound)
            (p, q_same, q), scale = valuation.valued(
                [(previous, self.rate_at(before)), (current, self.rate_at(before)),
                 (current, self.rate_at(bound))], len(self.customers))
            yield month, p, q_same, q, paid, self.denominator * scale
            paid = paid | self.paying(current)
            previous, before = current, bound

    def movement_cells(
        self, first: date, last: date
    ) -> Iterator[tuple[str, dict[str, np.ndarray], int]]:
        """Each month's movements, by kind, of every customer, and their denominator in
        cents: p against q' (the month end at the month before's rates) classifies, and
        `fx` is q - q' (contract v2). What `movements` adds up, and what a restatement
        compares customer by customer."""
        for month, p, q_same, q, paid, denominator in self.month_ends(first, last):
            yield (month_label(month), self._cells(p, q_same, paid) | {"fx": q - q_same},
                   denominator)

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
        holds at the first month end after it unless the next step comes first; a
        customer paid when it held MRR in any currency."""
        out = np.zeros(len(self.customers), dtype=bool)
        for currency, steps in self.mrr.items():
            at, offsets = steps.at, steps.offsets
            if len(at) == 0:
                continue
            following = np.append(at[1:], NEVER)
            following[offsets[1:][offsets[1:] > offsets[:-1]] - 1] = NEVER  # a customer's last
            month = at.astype("datetime64[us]").astype("datetime64[M]")
            boundary = (month + 1).astype("datetime64[us]").astype(np.int64)
            held = ((self.units[currency] > 0).astype(bool) & (boundary <= bound)
                    & (following >= boundary))
            counts = np.concatenate(([0], np.cumsum(held)))
            out |= (counts[offsets[1:]] - counts[offsets[:-1]]) > 0
        return out

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



class Columns:
    """An index's columns, gathered a chunk of rows at a time with customers in order:
    instants are converted chunk by chunk, so memory holds columns, not rows."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.paid: list[str | None] = []
        # per currency: (owners, instants, numerators, denominators), chunk by chunk
        self.series: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[int], list[int]]] = {}
        self.attr_owners: list[np.ndarray] = []
        self.attr_at: list[np.ndarray] = []
        self.attr_values: list[dict[str, str]] = []

    def customer(self, name: str, first_paid: str | None) -> None:
        """The next customer: the rows of later chunks name it by its number."""
        self.names.append(name)
        self.paid.append(first_paid)

    def steps(self, owners: np.ndarray, currencies: list[str], at: list[str],
              mrr: list[str]) -> None:
        """Rows by customer, then currency, then time: each currency's keep that order."""
        instants_ = instants(at)
        kinds = set(currencies)
        for currency in sorted(kinds):
            if len(kinds) == 1:
                chosen, texts = slice(None), mrr
            else:
                chosen = np.array([c == currency for c in currencies], dtype=bool)
                texts = [m for c, m in zip(currencies, mrr, strict=True) if c == currency]
            series = self.series.setdefault(currency, ([], [], [], []))
            series[0].append(owners[chosen])
            series[1].append(instants_[chosen])
            for text in texts:
                numerator, _, denominator = text.partition("/")
                series[2].append(int(numerator))
                series[3].append(int(denominator or 1))

    def attributes(self, owners: np.ndarray, at: list[str], values: list[str]) -> None:
        self.attr_owners.append(owners)
        self.attr_at.append(instants(at))
        self.attr_values.extend(orjson.loads(text) for text in values)

    def index(self) -> MRRIndex:
        denominator = math.lcm(1, *{d for s in self.series.values() for d in s[3]})
        units = {currency: [n * (denominator // d) for n, d in zip(s[2], s[3], strict=True)]
                 for currency, s in self.series.items()}
        largest = max((max(u, default=0) for u in units.values()), default=0)
        safe = largest * max(len(self.names), 1) < 2**62
        return MRRIndex(
            self.names,
            instants(self.paid),
            {c: _step_table(len(self.names), s[0], s[1]) for c, s in self.series.items()},
            {c: np.array(u, dtype=np.int64 if safe else object) for c, u in units.items()},
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
