"""Exact figures as the contract prints them: rounded half-even for people, and the
exact value as a reduced fraction next to it."""

from __future__ import annotations

from fractions import Fraction
from typing import Any


def decimal_text(value: Fraction, places: int) -> str:
    """Half-even rounding, exact: `round()` on a Fraction rounds ties to even."""
    scaled = round(value * 10**places)
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}" if places else f"{sign}{digits}"


def exact_text(value: Fraction) -> str:
    return str(value)  # "p/q" reduced, or "p" when whole


def money(name: str, cents: Fraction, places: int = 2) -> dict[str, Any]:
    """An amount held in cents, in currency units, shown with the currency's `places`
    (its ISO 4217 minor unit: `ledger.currencies.minor_unit`)."""
    units = Fraction(cents) / 100
    return {name: decimal_text(units, places), f"{name}_exact": exact_text(units)}


def optional_money(name: str, cents: Fraction | None) -> dict[str, Any]:
    """An amount that may not exist (an average over no one): null, like a ratio."""
    return money(name, cents) if cents is not None else {name: None, f"{name}_exact": None}


def ratio(name: str, value: Fraction | None) -> dict[str, Any]:
    if value is None:
        return {name: None, f"{name}_exact": None}
    return {name: decimal_text(value, 6), f"{name}_exact": exact_text(value)}


def percent(value: Fraction | str | None) -> str:
    """For tables: 1.234567 (or its exact text, "p/q") -> '123.46%'."""
    return "n/a" if value is None else decimal_text(Fraction(value) * 100, 2) + "%"


def exact_decimal(value: Fraction) -> str:
    """The exact value as decimal text a spreadsheet reads (`12.5`, `-3`) when it has a
    finite decimal expansion, else the reduced fraction (`1523/3`): MRR of a weekly or
    daily plan can be a repeating decimal, which no decimal text holds exactly."""
    q = value.denominator
    twos = fives = 0
    while q % 2 == 0:
        q, twos = q // 2, twos + 1
    while q % 5 == 0:
        q, fives = q // 5, fives + 1
    if q != 1:
        return exact_text(value)
    places = max(twos, fives)
    return decimal_text(value, places)
