"""The engine's figures in the reporting currency (contract v2: Figures), over each
customer's MRR per currency as integer columns (1/D cents of the currency).

A customer billed in one currency X compares with itself in X: at one rate r > 0, its
MRR at two instants orders as its amounts in X do, so it is classified on its integer
amounts, and each sum is taken in X (integers, exactly) and multiplied by r once. Only a
customer billed in several currencies (rare) is valued one by one, in fractions. A
currency nobody holds needs no rate; `rate` raises `MissingRate` for one that is held and
has none. So a figure over 100k customers stays a few integer passes per currency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from projections import nrr
from projections.movements import Movement
from projections.movements import cells as movement_amounts
from projections.nrr import Retention
from projections.nrr import cells as retention_amounts
from projections.nrr import split as retention_split

Native = dict[str, np.ndarray]  # currency -> each customer's MRR in it (1/D cents)
Rate = Callable[[str], Fraction]  # currency -> its rate into the reporting currency
ZERO = Fraction(0)


def alone(natives: Sequence[Native]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per currency, the customers holding MRR in it and in no other in any of
    `natives`; and the customers holding several."""
    holds = {}
    for currency in natives[0]:
        held = natives[0][currency] != 0
        for native in natives[1:]:
            held = held | (native[currency] != 0)
        if held.any():
            holds[currency] = held
    if len(holds) <= 1:
        return holds, np.zeros(len(next(iter(natives[0].values()), [])), dtype=bool)
    count = np.zeros(len(next(iter(holds.values()))), dtype=np.int8)
    for held in holds.values():
        count += held
    mixed = count > 1
    return {c: held & ~mixed for c, held in holds.items()}, mixed


def valued(parts: Sequence[tuple[Native, Rate]], size: int) -> tuple[list[np.ndarray], int]:
    """Each customer's MRR of each (native, rate) part in the reporting currency, all as
    integers over one `scale` (x D: in cents): for figures read customer by customer
    (`export mrr`). Python integers where int64 could overflow."""
    rates = [{c: rate(c) for c, values in native.items() if values.any()}
             for native, rate in parts]
    scale = math.lcm(1, *(r.denominator for held in rates for r in held.values()))
    factors = [{c: r.numerator * (scale // r.denominator) for c, r in held.items()}
               for held in rates]
    largest = sum(int(abs(native[c]).max(initial=0)) * f
                  for (native, _), held in zip(parts, factors, strict=True)
                  for c, f in held.items())
    exact = np.int64 if largest * max(size, 1) < 2**62 else object
    out = []
    for (native, _), held in zip(parts, factors, strict=True):
        total = np.zeros(size, dtype=exact)
        for c, f in held.items():
            values = native[c] if exact is np.int64 else native[c].astype(object)
            total = total + (values if f == 1 else values * f)
        out.append(total)
    return out, scale


def worth(native: Native, i: int, rate: Rate, denominator: int) -> Fraction:
    """Customer i's MRR in the reporting currency (an amount of 0 needs no rate)."""
    return sum((Fraction(int(values[i]), denominator) * rate(c)
                for c, values in native.items() if values[i]), ZERO)


def total(native: Native, rate: Rate, denominator: int) -> Fraction:
    """Every customer's MRR, summed, in the reporting currency."""
    return sum((Fraction(int(values.sum()), denominator) * rate(c)
                for c, values in native.items() if values.any()), ZERO)


def retention(n0: Native, n1: Native, at_start: Rate, at_end: Rate, denominator: int
              ) -> Retention:
    """NRR/GRR of the cohort whose MRR per currency is n0 at the start and n1 at the
    end: classified at constant currency (the end at the start's rates), the rates'
    own change apart (`fx_impact`)."""
    groups, mixed = alone([n0, n1])
    d = denominator
    starting = ending = constant = expansion = contraction = churn = ZERO
    churned = 0
    for currency, chosen in groups.items():
        a0, a1 = n0[currency][chosen], n1[currency][chosen]
        counted = retention_amounts(a0, a1)
        r0 = at_start(currency)
        r1 = at_end(currency) if a1.any() else ZERO
        starting += r0 * Fraction(int(a0.sum()), d)
        ending += r1 * Fraction(int(a1.sum()), d)
        constant += r0 * Fraction(int(a1.sum()), d)
        expansion += r0 * Fraction(int(counted["expansion"].sum()), d)
        contraction += r0 * Fraction(int(counted["contraction"].sum()), d)
        churn += r0 * Fraction(int(counted["churn"].sum()), d)
        churned += int(np.count_nonzero(counted["churn"]))  # its whole MRR at start, > 0
    several = nrr.retention((worth(n0, i, at_start, d), worth(n1, i, at_end, d),
                             worth(n1, i, at_start, d)) for i in np.flatnonzero(mixed))
    return Retention(len(next(iter(n0.values()), [])), starting + several.starting_mrr,
                     ending + several.ending_mrr, expansion + several.expansion,
                     contraction + several.contraction, churn + several.churn,
                     churned + several.churned, ending - constant + several.fx_impact)


def grew(n0: Native, n1: Native, at_start: Rate, denominator: int) -> np.ndarray:
    """Which customers' MRR grew from n0 to n1 at constant currency (NRR's expansion)."""
    groups, mixed = alone([n0, n1])
    out = np.zeros(len(mixed), dtype=bool)
    for currency, chosen in groups.items():
        out |= chosen & retention_split(n0[currency], n1[currency])[1]
    for i in np.flatnonzero(mixed):
        out[i] = retention_split(worth(n0, i, at_start, denominator),
                                 worth(n1, i, at_start, denominator))[1]
    return out


def movement(label: str, p: Native, q: Native, paid: np.ndarray, before: Rate, now: Rate,
             denominator: int) -> Movement:
    """A month's movements: p (the month before's end) and q' (this month end's MRR at
    the same rates) classified; fx = q at this month end's rates - q'."""
    groups, mixed = alone([p, q])
    d = denominator
    sums = dict.fromkeys(("new", "expansion", "contraction", "churn", "reactivation",
                          "fx"), ZERO)
    for currency, chosen in groups.items():
        a, b = p[currency][chosen], q[currency][chosen]
        r0 = before(currency)
        r1 = now(currency) if b.any() else ZERO
        for kind, amounts in movement_amounts(a, b, paid[chosen]).items():
            sums[kind] += r0 * Fraction(int(amounts.sum()), d)
        sums["fx"] += (r1 - r0) * Fraction(int(b.sum()), d)
    for i in np.flatnonzero(mixed):
        m0, m1 = worth(p, i, before, d), worth(q, i, before, d)
        for kind, amount in movement_amounts(m0, m1, paid[i]).items():
            sums[kind] += amount
        sums["fx"] += worth(q, i, now, d) - m1
    return Movement(label, **sums)
