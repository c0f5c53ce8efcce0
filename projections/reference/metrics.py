"""Every metric of the contract over a ledger's events, plainly: each question answered by
folding every customer again and valuing each figure at the rates its instant names (MRR,
NRR/GRR at constant currency, the day-one figures, monthly movements)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from fractions import Fraction
from typing import Any

from projections.reference.events import Event, customer_of, visible
from projections.reference.fold import History, fold, paying
from projections.reference.months import (
    in_period,
    last_instant,
    microsecond_before,
    month_last_day,
    month_range,
    month_start,
    next_month,
)
from projections.reference.rates import rate


class Reference:
    """Every metric of the contract over a ledger's events, as known at `known_at`, in
    the `reporting` currency (contract v2)."""

    def __init__(self, events: Iterable[Event], known_at: str | None = None,
                 reporting: str = "USD") -> None:
        events = list(events)
        owners = customer_of(events)
        self.reporting = reporting
        self.rates = [e for e in visible(events, known_at) if e.type == "fx.rate"]
        by_customer: dict[str, list[Event]] = {}
        for event in visible(events, known_at):
            if owners[event.event_id] is not None:
                by_customer.setdefault(owners[event.event_id], []).append(event)  # type: ignore[arg-type]
        self.histories = {c: fold(es) for c, es in sorted(by_customer.items())}

    def value(self, native: dict[str, Fraction], last: str) -> Fraction:
        """MRR in the reporting currency: each currency's amount at its rate at `last`
        (an amount of 0 needs no rate)."""
        return sum((v * rate(self.rates, c, self.reporting, last)
                    for c, v in sorted(native.items()) if v != 0), Fraction(0))

    def mrr(self, day: date) -> tuple[Fraction, int]:
        """Total MRR at the end of `day`, and the number of customers with MRR > 0."""
        natives = [h.mrr_at(last_instant(day)) for h in self.histories.values()]
        total = sum((self.value(n, last_instant(day)) for n in natives), Fraction(0))
        return total, sum(1 for n in natives if paying(n))

    def nrr(self, start: date, end: date, cohort: str | None = None,
            segment: dict[str, str | None] | None = None) -> dict[str, Any]:
        """The contract's endpoint NRR/GRR of the customers paying at the end of `start`,
        classified at constant currency (the end valued at the start's rates)."""
        r = dict.fromkeys(("starting_mrr", "ending_mrr", "expansion", "contraction",
                           "churn", "fx_impact", "constant"), Fraction(0))
        r["customers"] = 0
        s, e = last_instant(start), last_instant(end)
        for history in self.histories.values():
            if not paying(history.mrr_at(s)):
                continue
            if cohort is not None and not in_period(history.first_paid, cohort):
                continue
            attributes = history.attributes_at(s)
            if any(attributes.get(k) != v for k, v in (segment or {}).items()):
                continue
            m0 = self.value(history.mrr_at(s), s)
            c1 = self.value(history.mrr_at(e), s)
            m1 = self.value(history.mrr_at(e), e)
            r["customers"] += 1
            r["starting_mrr"] += m0
            r["ending_mrr"] += m1
            r["constant"] += c1
            r["fx_impact"] += m1 - c1
            if c1 == 0:
                r["churn"] += m0
            elif c1 > m0:
                r["expansion"] += c1 - m0
            elif c1 < m0:
                r["contraction"] += m0 - c1
        total, constant = r["starting_mrr"], r.pop("constant")
        r["nrr"] = r["ending_mrr"] / total if total else None
        r["nrr_constant_currency"] = constant / total if total else None
        r["grr"] = (total - r["contraction"] - r["churn"]) / total if total else None
        return r

    # -- the day-one figures, stated as plainly (docs/metrics.md) --------------------------

    def arr(self, day: date) -> Fraction:
        """Annual recurring revenue: twelve times the MRR at the end of `day`."""
        return self.mrr(day)[0] * 12

    def arpa(self, day: date) -> Fraction | None:
        """MRR per customer paying at the end of `day`; None when no one pays."""
        total, paying = self.mrr(day)
        return total / paying if paying else None

    def logo_churn_rate(self, start: date, end: date) -> Fraction | None:
        """Of the customers paying at the end of `start`, the share paying nothing at the
        end of `end`."""
        paid = [h for h in self.histories.values() if paying(h.mrr_at(last_instant(start)))]
        gone = [h for h in paid if not paying(h.mrr_at(last_instant(end)))]
        return Fraction(len(gone), len(paid)) if paid else None

    def quick_ratio(self, start: date, end: date) -> Fraction | None:
        """(new + expansion + reactivation) / (contraction + churn) over the months after
        `start`'s month up to `end`'s; None when nothing was lost."""
        first, last = next_month(start.isoformat()[:7]), end.isoformat()[:7]
        rows = self.movements(first, last) if first <= last else []
        up = sum((r["new"] + r["expansion"] + r["reactivation"] for r in rows), Fraction(0))
        down = sum((r["contraction"] + r["churn"] for r in rows), Fraction(0))
        return up / down if down else None

    def nrr_by(self, start: date, end: date, key: str) -> dict[str | None, dict[str, Any]]:
        """NRR/GRR per value of attribute `key` at the end of `start` among the customers
        paying then (None: those without it, whose value `get` reads as None)."""
        values = {h.attributes_at(last_instant(start)).get(key)
                  for h in self.histories.values() if paying(h.mrr_at(last_instant(start)))}
        return {value: self.nrr(start, end, segment={key: value}) for value in values}

    def movements(self, first: str, last: str) -> list[dict[str, Any]]:
        """Monthly movements of the months `first`..`last` (YYYY-MM), month-end snapshots:
        p and q' at the month before's end rates, fx = q - q' (q at the month end's)."""
        out = []
        for month in month_range(first, last):
            row: dict[str, Any] = {"month": month}
            row.update(dict.fromkeys(("new", "expansion", "contraction", "churn",
                                      "reactivation", "fx"), Fraction(0)))
            before = month_start(month)
            previous, end = microsecond_before(before), last_instant(month_last_day(month))
            for history in self.histories.values():
                p = self.value(history.mrr_at(previous), previous)
                q_same = self.value(history.mrr_at(end), previous)
                q = self.value(history.mrr_at(end), end)
                row["fx"] += q - q_same
                if q_same > p > 0:
                    row["expansion"] += q_same - p
                elif 0 < q_same < p:
                    row["contraction"] += p - q_same
                elif p > 0 == q_same:
                    row["churn"] += p
                elif p == 0 < q_same:
                    kind = "reactivation" if paid_at_a_month_end_before(history, before) else "new"
                    row[kind] += q_same
            out.append(row)
        return out


def paid_at_a_month_end_before(history: History, before: str) -> bool:
    """Whether MRR was > 0 at the end of some month ending before `before` (a month's
    first instant). A step with MRR > 0 holds at the end of the month it falls in, unless
    the next step comes in that same month (or at the next month's first instant)."""
    steps = [(at, paying(native)) for at, native in history.mrr]
    for i, (at, paid) in enumerate(steps):
        boundary = month_start(next_month(at[:7]))
        following = steps[i + 1][0] if i + 1 < len(steps) else None
        if paid and boundary <= before and (following is None or following >= boundary):
            return True
    return False
