"""The rate in force (contract v2: The rate in force), pure.

`rate(X -> R, t)` is 1 when X = R; else the later of the latest rate of (X, R) and the
inverse of the latest of (R, X) effective before the bound t (a date's bound is the next
day's first instant: "at or before the end of D"); else through the alphabetically first
intermediate currency C whose legs X -> C and C -> R are both in force by the same rule.
Ties between rates go to the later `effective_at`, then the later recording. No rate: the
figure cannot be given (`MissingRate`), never a silent 0.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from fractions import Fraction
from typing import NamedTuple

import orjson

from ledger.kinds import FX_RATE, VOID
from projections.facts import Fact
from projections.mrr import amount_to_cents


class MissingRate(LookupError):
    """A figure needs a rate the ledger does not hold (as known then)."""

    def __init__(self, currency: str, reporting: str, bound: str) -> None:
        super().__init__(currency, reporting, bound)
        self.currency, self.reporting, self.bound = currency, reporting, bound

    def __str__(self) -> str:
        return (f"no exchange rate {self.currency}->{self.reporting} in force at "
                f"{instant_text(self.bound)}: record an fx.rate of {self.currency} "
                f"(e.g. `revledger import fx FILE`) effective by then")


def instant_text(bound: str) -> str:
    """A bound as people say it: a day's end for a midnight bound, else the instant."""
    if bound.endswith("T00:00:00.000000Z"):
        day = date.fromisoformat(bound[:10]) - timedelta(days=1)
        return f"the end of {day.isoformat()} UTC"
    if bound.startswith("9999-12-31T24"):
        return "the end of 9999-12-31 UTC"
    return bound


# A customer's MRR per currency, valued in the reporting currency at a bound's rates
Worth = Callable[[dict[str, Fraction], str], Fraction]


class Quote(NamedTuple):
    """One visible `fx.rate`: from `effective_at` on, 1 `base` = `rate` `quote` (a
    Fraction, or its validated decimal text, read only if a figure needs it)."""

    effective_at: str
    position: int
    base: str
    quote: str
    rate: Fraction | str


def quotes(facts: Iterable[Fact]) -> list[Quote]:
    """The rates among visible facts."""
    return [Quote(f.effective_at, f.position, f.payload["base"], f.payload["quote"],  # type: ignore[arg-type]
                  f.payload["rate"]) for f in facts if f.type == FX_RATE]


def stored_quotes(rows: Iterable[tuple[int, bytes]]) -> list[Quote]:
    """The rates among stored (position, state) rows of rates and their voids, less the
    voided ones: all a figure needs, decoded with one JSON read per row (a year of daily
    rates for thirty currencies is ten thousand rows)."""
    held: list[tuple[str, Quote]] = []
    voided: set[str] = set()
    for position, state in rows:
        data = orjson.loads(state)
        kind, p = data.get("type"), data.get("payload")
        if kind == FX_RATE:
            held.append((data["event_id"], Quote(data["effective_at"], position, p["base"],
                                                 p["quote"], p["rate"])))
        elif kind == VOID:
            voided.add(p["voids"])
    return [q for event_id, q in held if event_id not in voided]


def decimal(rate: Fraction | str) -> Fraction:
    """A rate's exact value."""
    return rate if isinstance(rate, Fraction) else Fraction(amount_to_cents(rate)) / 100


class Rates:
    """A ledger's rates, by unordered pair: each pair's rates in (effective, recorded)
    order, so the latest before a bound is one look-up."""

    def __init__(self, held: Iterable[Quote] = ()) -> None:
        pairs: dict[tuple[str, str], list[tuple[str, int, Fraction | str, bool]]] = {}
        for q in held:
            first, second = sorted((q.base, q.quote))
            pairs.setdefault((first, second), []).append(
                (q.effective_at, q.position, q.rate, q.base == first))
        self.pairs = {pair: sorted(rows) for pair, rows in pairs.items()}
        self.instants = {pair: [row[0] for row in rows] for pair, rows in self.pairs.items()}
        self.partners: dict[str, set[str]] = {}
        for first, second in self.pairs:
            self.partners.setdefault(first, set()).add(second)
            self.partners.setdefault(second, set()).add(first)

    def direct(self, x: str, y: str, bound: str) -> Fraction | None:
        """1 x in y from the pair's own rates (either way round) effective before `bound`."""
        first, second = sorted((x, y))
        instants = self.instants.get((first, second))
        if not instants:
            return None
        i = bisect_left(instants, bound)
        if i == 0:
            return None
        _, _, rate, forward = self.pairs[(first, second)][i - 1]
        value = decimal(rate) if forward else 1 / decimal(rate)  # 1 first = value second
        return value if x == first else 1 / value

    def rate(self, x: str, reporting: str, bound: str) -> Fraction:
        """rate(x -> reporting) in force at `bound`, or `MissingRate`."""
        if x == reporting:
            return Fraction(1)
        if (direct := self.direct(x, reporting, bound)) is not None:
            return direct
        shared = self.partners.get(x, set()) & self.partners.get(reporting, set())
        for via in sorted(shared):
            leg = self.direct(x, via, bound)
            other = self.direct(via, reporting, bound) if leg is not None else None
            if other is not None:
                return leg * other  # type: ignore[operator]
        raise MissingRate(x, reporting, bound)

    def worth(self, reporting: str) -> Worth:
        """MRR per currency -> MRR in `reporting` at a bound's rates (an amount of 0
        needs no rate)."""

        def value(native: dict[str, Fraction], bound: str) -> Fraction:
            return sum((amount * self.rate(currency, reporting, bound)
                        for currency, amount in native.items() if amount), Fraction(0))

        return value
