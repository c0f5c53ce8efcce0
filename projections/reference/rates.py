"""The contract's rate in force, plainly: the latest of a pair or of its inverse, else
through the alphabetically first currency that has both legs; no rate, no figure."""

from __future__ import annotations

from fractions import Fraction

from projections.reference.events import Event, amount


class NoRate(LookupError):
    """A figure needs a rate the ledger does not hold: the figure cannot be given."""


def rate(rates: list[Event], currency: str, reporting: str, last: str) -> Fraction:
    """The contract's rate(currency -> reporting) in force at instant `last`."""
    if currency == reporting:
        return Fraction(1)
    found = direct(rates, currency, reporting, last)
    if found is not None:
        return found
    others = sorted({c for e in rates for c in (e.record["base"], e.record["quote"])}
                    - {currency, reporting})
    for via in others:  # alphabetically first intermediate currency with both legs
        first = direct(rates, currency, via, last)
        second = direct(rates, via, reporting, last)
        if first is not None and second is not None:
            return first * second
    raise NoRate(f"no rate {currency}->{reporting} at {last}")


def direct(rates: list[Event], x: str, y: str, last: str) -> Fraction | None:
    """The latest rate of (x, y), or the inverse of the latest of (y, x), whichever is
    later (then the later recorded), effective at or before `last`."""
    candidates = []
    for e in rates:
        pair = (e.record["base"], e.record["quote"])
        if e.effective_at <= last and pair in ((x, y), (y, x)):
            value = amount(e.record["rate"])
            candidates.append((e.effective_at, e.position, value if pair == (x, y) else 1 / value))
    return max(candidates)[2] if candidates else None
