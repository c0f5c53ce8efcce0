"""The query engine: the MRR view's columns (`projections.columns`) answering the metrics,
so a metric over 100k customers is a few vectorised passes instead of a Python loop per
customer.

Each figure is summed per currency in integers of 1/D cents (exact, see
`projections.columns`) and each currency's sum converted at its rate once
(`projections.valuation`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date
from fractions import Fraction
from functools import cache

import numpy as np

from projections import valuation
from projections.columns import NEVER, MRRColumns, instant
from projections.movements import Movement
from projections.movements import cells as movement_amounts
from projections.nrr import Retention
from projections.periods import Period, month_end, month_label, month_start, months
from projections.rates import Rates
from projections.valuation import Native


class MRRIndex(MRRColumns):
    """The view's columns answering queries in the reporting currency, each currency's
    steps converted at the rates a figure asks for. Build it like its columns
    (`from_rows`, `from_bytes`); `priced` gives it the ledger's rates and reporting
    currency."""

    rates = Rates()  # none, until `priced` says
    reporting = "USD"  # the ledgers' default, until `priced` says

    def priced(self, rates: Rates, reporting: str) -> MRRIndex:
        """This index answering in `reporting`, converting at `rates`."""
        self.rates, self.reporting = rates, reporting
        return self

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
            yield (month_label(month), movement_amounts(p, q_same, paid) | {"fx": q - q_same},
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
