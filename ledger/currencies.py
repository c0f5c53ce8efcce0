"""The currencies a ledger takes, and how many decimals each is shown with (ISO 4217).

The table is the ISO 4217 maintenance agency's list one (the currently active codes), as
the `iso4217` package ships it: nothing is typed by hand here, and a new edition of the
list arrives with the package. The minor unit is what display rounds to (JPY 0, USD 2,
KWD 3); amounts themselves keep every decimal they were given.
"""

from __future__ import annotations

from functools import cache

# Codes whose minor unit ISO gives as "N.A." (gold, SDR, the test code XTS, ...) are shown
# with two decimals, as every amount was before currencies had their own.
DEFAULT_PLACES = 2


@cache
def active_codes() -> frozenset[str]:
    """Every active ISO 4217 alphabetic code."""
    from iso4217 import Currency  # its table loads in ~12 ms: only once a code is asked

    return frozenset(c.code for c in Currency)


def is_active(code: str) -> bool:
    return code in active_codes()


@cache
def minor_unit(code: str) -> int:
    """The decimals an amount in `code` is displayed with."""
    from iso4217 import Currency

    exponent = Currency(code).exponent if is_active(code) else None
    return DEFAULT_PLACES if exponent is None else exponent
