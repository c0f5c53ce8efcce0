"""The pure fold: facts -> per-subscription states -> each customer's MRR timeline.

Events of a customer are applied in effective-time order, ties in recorded order; voided
events are skipped. The result for a customer is its change points per currency: `(instant, mrr)`
pairs, each the MRR in that currency from that instant on (0 before the first). No I/O,
no rounding, no conversion (contract v2: a rate is applied when a figure is asked for).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from operator import itemgetter
from typing import Any

from ledger.kinds import PRICED, VOID
from projections.facts import Fact
from projections.mrr import ZERO, SubscriptionState, apply, decimals_beyond_cents, scaled_mrr

Steps = list[tuple[str, Fraction]]
Native = dict[str, Steps]  # currency -> that currency's MRR change points (contract v2)
_INACTIVE = (SubscriptionState(), 0)


@dataclass
class CustomerHistory:
    """What the metrics need of one customer: its MRR in each currency it is billed in,
    kept apart (contract v2: converted only when a figure is asked for)."""

    steps: Native = field(default_factory=dict)
    # (instant, attributes in force from then on), merged in effective order
    attributes: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def first_paid(self) -> str | None:
        return first_paid(self.steps)


def first_paid(native: dict[str, list[tuple[str, Any]]]) -> str | None:
    """The first instant with MRR > 0 in any currency (a rate is > 0: in all of them)."""
    return min((next((at for at, mrr in steps if mrr > 0), None) for steps in native.values()),
               key=lambda at: at or "~", default=None)


def visible(facts: Iterable[Fact], known_at: str | None = None) -> list[Fact]:
    """The facts that count: recorded by `known_at` (if given) and not voided by then."""
    seen = list(facts) if known_at is None else [f for f in facts if f.recorded_at <= known_at]
    voided = {f.payload["voids"] for f in seen if f.type == VOID}
    if not voided:  # the usual case
        return seen
    return [f for f in seen if f.type != VOID and f.event_id not in voided]


def fold_customer(facts: Iterable[Fact]) -> CustomerHistory:
    """One customer's history from its visible facts (any order)."""
    ordered = sorted(facts, key=EFFECTIVE_ORDER)
    timeline = Timeline(scale_of(ordered))
    timeline.feed(ordered)
    return timeline.history()


def scale_of(facts: Iterable[Fact]) -> int:
    """A denominator for every MRR of these facts (in cents): 12 x the lcm of their
    interval counts x 10 for each decimal place of an amount beyond the cents."""
    counts, decimals = {1}, 0
    for f in facts:
        if f.type in PRICED:
            counts.add(f.payload.get("interval_count") or 1)
            if (amount := f.payload.get("amount")) is not None:
                decimals = max(decimals, decimals_beyond_cents(amount))
    return scale_for(counts, decimals)


def scale_for(counts: Iterable[int], decimals: int) -> int:
    """The denominator for prices with these interval counts and decimals beyond the
    cents: every MRR a whole number of its parts."""
    return 12 * math.lcm(*counts) * 10**decimals


class Timeline:
    """The fold's running state for one customer, fed facts in effective order.

    MRRs are kept per currency as integer numerators over `scale`, so the loop adds
    integers, not fractions. Fed more facts later on (all effective after those it
    holds), it goes on as if fed them all at once: what `known_at` versions of a history
    build on. A subscription whose currency changes moves its MRR from one currency's
    steps to the other's at that instant.
    """

    __slots__ = ("attribute_steps", "attributes", "scale", "steps", "subscriptions")

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.subscriptions: dict[str, tuple[SubscriptionState, int]] = {}
        self.attributes: dict[str, str] = {}
        self.attribute_steps: list[tuple[str, dict[str, str]]] = []
        # currency -> its change points; may repeat a value: see `mrr_steps`
        self.steps: dict[str, list[tuple[str, int]]] = {}

    def feed(self, ordered: Iterable[Fact]) -> None:
        subscriptions, scale, add = self.subscriptions, self.scale, self._add
        for fact in ordered:
            at = fact.effective_at
            assert at is not None, "only voids may lack an effective time"
            if fact.subscription_id is None:
                self.attributes = {**self.attributes, **fact.payload.get("attributes", {})}
                _put(self.attribute_steps, at, self.attributes)
                continue
            state, before = subscriptions.get(fact.subscription_id, _INACTIVE)
            currency = state.currency
            state = apply(state, fact.type, fact.payload)
            after = scaled_mrr(state, scale)
            if type(after) is Fraction:  # an amount with more than 2 decimals: whole here
                after = after.numerator
            subscriptions[fact.subscription_id] = (state, after)
            if state.currency == currency:
                if after != before:
                    add(currency, at, after - before)  # type: ignore[arg-type]
            else:  # MRR is only ever held by an active subscription, which has a currency
                if before:
                    add(currency, at, -before)  # type: ignore[arg-type]
                if after:
                    add(state.currency, at, after)  # type: ignore[arg-type]

    def _add(self, currency: str, at: str, change: int) -> None:
        steps = self.steps.get(currency)
        if steps is None:
            steps = self.steps[currency] = []
        _put(steps, at, (steps[-1][1] if steps else 0) + change)

    def mrr_steps(self) -> dict[str, list[tuple[str, int]]]:
        """The change points per currency (those with any), as numerators over `scale`."""
        out = {}
        for currency in sorted(self.steps):
            if kept := _without_repeats(self.steps[currency]):
                out[currency] = kept
        return out

    def history(self) -> CustomerHistory:
        return CustomerHistory(
            {currency: [(at, fraction(value, self.scale)) for at, value in steps]
             for currency, steps in self.mrr_steps().items()},
            self.attribute_steps)


EFFECTIVE_ORDER = itemgetter(4, 0)  # (effective_at, position): ties in recorded order


def history_order(fact: Fact) -> tuple[str, int]:
    """`EFFECTIVE_ORDER` with the voids in it too, for showing a history: a void (no
    effective instant of its own) where it took effect, at its recording instant."""
    return fact.effective_at or fact.recorded_at, fact.position


# The same MRRs recur across customers (a ledger has few plans): cached, a step costs a
# look-up instead of a gcd and a new Fraction.
fraction = lru_cache(maxsize=1 << 16)(Fraction)


def by_customer(facts: Iterable[Fact], known_at: str | None = None) -> dict[str, list[Fact]]:
    """The visible facts of a ledger, per customer, customers in order."""
    grouped: dict[str, list[Fact]] = defaultdict(list)
    for fact in visible(facts, known_at):
        if fact.customer_id is not None:
            grouped[fact.customer_id].append(fact)
    return dict(sorted(grouped.items()))


def fold(facts: Iterable[Fact], known_at: str | None = None) -> dict[str, CustomerHistory]:
    """Every customer's history, from all facts of a ledger (the naive, complete replay)."""
    return {customer: fold_customer(fs) for customer, fs in by_customer(facts, known_at).items()}


def _put(steps: list, at: str, value: object) -> None:
    """Append a change point; several events at one instant leave one, the last."""
    if steps and steps[-1][0] == at:
        steps[-1] = (at, value)
    else:
        steps.append((at, value))


def _without_repeats(steps: list[tuple[str, int]]) -> list[tuple[str, int]]:
    kept: list[tuple[str, int]] = []
    previous = 0
    for at, mrr in steps:
        if mrr != previous:
            kept.append((at, mrr))
            previous = mrr
    return kept


def mrr_before(steps: Steps, bound: str) -> Fraction:
    """MRR counting every event effective strictly before `bound`."""
    value = ZERO
    for at, mrr in steps:
        if at >= bound:
            break
        value = mrr
    return value


def mrr_after(steps: Steps, at: str) -> Fraction:
    """MRR once every event effective at or before `at` has applied."""
    value = ZERO
    for step_at, mrr in steps:
        if step_at > at:
            break
        value = mrr
    return value
