"""The restatement bridge: a figure as originally reported, the adjustments that took it to
the figure as restated, and which customers and events each adjustment comes from.

Pure. A figure is the sum of its customers' contributions (a cohort customer's starting
and ending MRR, its expansion, contraction or churn; a customer's cell of a month's
movements; its MRR at a date), plus ratios computed from those sums (NRR, GRR). Each
customer whose contribution differs between the two instants is one adjustment: the
differences of its fields, so that original + Σ adjustments = restated exactly for every
additive field. A ratio is not a sum, so its adjustments are the steps it takes as the
customers' adjustments are applied one after another (customers entering the figure
first, then those changing, then those leaving, each group in customer order): they add
up to the restated ratio exactly too, and with that order no step divides by zero when
neither end does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

Contribution = Mapping[str, Fraction]  # a customer's share of each additive field
Ratios = Callable[[Mapping[str, Fraction]], dict[str, Fraction | None]]
Labels = Callable[[Contribution | None], dict[str, str]]
ZERO = Fraction(0)


@dataclass(frozen=True)
class Adjustment:
    customer_id: str
    changes: dict[str, Fraction | None]  # field -> restated minus original (its share)
    moved: list[tuple[str, str, str]]  # (what, category before, category after)
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bridge:
    fields: list[str]  # additive fields, then ratios, in presentation order
    original: dict[str, Fraction | None]
    restated: dict[str, Fraction | None]
    adjustments: list[Adjustment] = field(default_factory=list)


def bridge(
    before: Mapping[str, Contribution],
    after: Mapping[str, Contribution],
    additive: list[str],
    ratios: Ratios = lambda sums: {},
    labels: Labels = lambda c: {},
) -> Bridge:
    """From each customer's contribution as known before and after (a customer without
    one is outside the figure). `additive` names the fields in order; fields a
    contribution lacks are 0."""
    original_sums = _sums(before.values(), additive)
    restated_sums = _sums(after.values(), additive)
    changed = [c for c in set(before) | set(after)
               if _full(before.get(c), additive) != _full(after.get(c), additive)]
    changed.sort(key=lambda c: (0 if c not in before else 2 if c not in after else 1, c))
    running, adjustments = dict(original_sums), []
    running_ratios = ratios(running)
    for customer in changed:
        old, new = _full(before.get(customer), additive), _full(after.get(customer), additive)
        changes: dict[str, Fraction | None] = {}
        for name in additive:
            if new[name] != old[name]:
                changes[name] = new[name] - old[name]
                running[name] += changes[name]
        next_ratios = ratios(running)
        for name, value in next_ratios.items():
            previous = running_ratios[name]
            if value != previous:
                changes[name] = None if value is None or previous is None else value - previous
        running_ratios = next_ratios
        was, now = labels(before.get(customer)), labels(after.get(customer))
        moved = [(what, was.get(what, "none"), now.get(what, "none"))
                 for what in sorted(set(was) | set(now)) if was.get(what) != now.get(what)]
        adjustments.append(Adjustment(customer, changes, moved))
    original = {**original_sums, **ratios(original_sums)}
    restated = {**restated_sums, **ratios(restated_sums)}
    return Bridge([*additive, *ratios(original_sums)], original, restated, adjustments)


def _full(contribution: Contribution | None, names: list[str]) -> dict[str, Fraction]:
    return {name: Fraction((contribution or {}).get(name, ZERO)) for name in names}


def _sums(contributions, names: list[str]) -> dict[str, Fraction]:
    sums = dict.fromkeys(names, ZERO)
    for contribution in contributions:
        for name, value in contribution.items():
            sums[name] += value
    return sums


def with_events(bridge_: Bridge, events: Mapping[str, tuple[str, ...]]) -> Bridge:
    """The bridge with each adjustment naming its customer's events from `events`."""
    return Bridge(bridge_.fields, bridge_.original, bridge_.restated, [
        Adjustment(a.customer_id, a.changes, a.moved, events.get(a.customer_id, ()))
        for a in bridge_.adjustments
    ])


def holds(b: Bridge) -> bool:
    """original + Σ adjustments = restated, field by field (None where a side has no
    ratio)."""
    for name in b.fields:
        if b.original[name] is None or b.restated[name] is None:
            continue
        total = b.original[name]
        for a in b.adjustments:
            change = a.changes.get(name, ZERO)
            total = None if total is None or change is None else total + change
        if total != b.restated[name]:
            return False
    return True
