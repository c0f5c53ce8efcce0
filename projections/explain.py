"""Explaining a figure: which customers make up an NRR, and which events moved each one.

The cohort and each customer's figures come from the query engine (the very columns
`nrr` sums); the events behind a customer's figure are read only for the cohort's
customers whose MRR changed in the period (the engine's change points say which), and
each one's are folded again to find those that moved it. Nothing else of the ledger is
read. Pure, given the engine and a reader of
customers' events; the tests hold its rows' sums to the reference NRR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from projections.engine import MRRIndex, instant
from projections.facts import Fact
from projections.fold import EFFECTIVE_ORDER, fold_customer, visible
from projections.nrr import category
from projections.periods import Period


@dataclass(frozen=True)
class Contribution:
    customer_id: str
    starting_mrr: Fraction
    ending_mrr: Fraction
    event_ids: tuple[str, ...]  # visible events effective in the period that moved its MRR
    constant_ending: Fraction  # the end's MRR at the start's rates (contract v2)

    @property
    def fx_impact(self) -> Fraction:
        return self.ending_mrr - self.constant_ending

    @property
    def category(self) -> str:
        """The contract's split of a cohort customer's change at constant currency (flat:
        no change)."""
        return category(self.starting_mrr, self.constant_ending)


# The stored events of these customers (voids of their events included), customer by
# customer: all an explanation asks of the ledger.
CustomerEvents = Callable[[Sequence[str]], Iterable[tuple[str, list[Fact]]]]


def explain_nrr(
    e: MRRIndex,
    start: str,
    end: str,
    events: CustomerEvents,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
    known_at: str | None = None,
) -> list[Contribution]:
    """One row per cohort customer, in customer order: its figures as `nrr` sums them,
    and the events (visible by `known_at`, if given) that moved its MRR in the period."""
    shares = cohort_shares(e, start, end, vintage, segment)
    stepped = changed_between(e, start, end)
    moving = sorted(c for c in shares if c in stepped)  # the others: no event moved them
    moved = {customer: moved_by(visible(facts, known_at), start, end)
             for customer, facts in events(moving)}
    return [Contribution(c, m0, m1, moved.get(c, ()), c1)
            for c, (m0, c1, m1) in sorted(shares.items())]


def cohort_shares(
    e: MRRIndex,
    start: str,
    end: str,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> dict[str, tuple[Fraction, Fraction, Fraction]]:
    """Each NRR cohort customer's (MRR at start, MRR at end at the start's rates, MRR at
    end), in the reporting currency, exactly: what `nrr` sums (contract v2)."""
    base, m0, c1, m1, d = e.cohort(start, end, vintage, segment)
    return {e.customers[i]: (Fraction(int(m0[i]), d), Fraction(int(c1[i]), d),
                             Fraction(int(m1[i]), d))
            for i in np.flatnonzero(base)}


def changed_between(e: MRRIndex, start: str, end: str) -> set[str]:
    """The customers whose MRR (in some currency) has a change point in [start, end): the
    only ones an event can have moved in the period. The view holds every change point of
    the fold (it is the same step function), so none is missed."""
    lo, hi = instant(start), instant(end)
    out = np.zeros(len(e.customers), dtype=bool)
    for steps in e.mrr.values():
        inside = np.concatenate(([0], np.cumsum((steps.at >= lo) & (steps.at < hi))))
        out |= (inside[steps.offsets[1:]] - inside[steps.offsets[:-1]]) > 0
    return {e.customers[i] for i in np.flatnonzero(out)}


def moved_by(facts: list[Fact], start: str, end: str) -> tuple[str, ...]:
    """Of a customer's visible facts, those effective in [start, end) at an instant its
    MRR changed (in some currency), in effective order; attribute changes move no MRR."""
    history = fold_customer(facts)
    changes = {at for steps in history.steps.values() for at, _ in steps if start <= at < end}
    moved = sorted((f for f in facts if f.effective_at in changes and f.subscription_id
                    is not None), key=EFFECTIVE_ORDER)
    return tuple(f.event_id for f in moved)
