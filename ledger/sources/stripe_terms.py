"""A Stripe subscription's recurring amount, as Stripe's own MRR definition counts it (pure).

Stripe's Billing analytics (docs.stripe.com/billing/subscriptions/analytics/glossary and
support.stripe.com/questions/billing-analytics) count the monthly-normalised value of
`active` and `past_due` subscriptions, net of discounts from `forever` coupons (finite
`once` / `repeating` coupons leave MRR unaffected), without tax and without metered (usage)
prices. This module turns a Subscription object's items into those terms, exactly: amounts
are `Decimal`s in major units, multiplied before anything is rounded, and rounded once, to
the 12 decimals the canonical contract keeps.

Where Stripe offers a choice (repeating coupons, when a scheduled cancellation stops
counting), `Policy` holds it; its defaults are Stripe's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from math import lcm
from typing import Any

from ledger.kinds import PER_YEAR

# Currencies whose minor unit is not 1/100 (Stripe's list).
_ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                 "VND", "VUV", "XAF", "XOF", "XPF"}
_THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}
_PLACES = Decimal(10) ** -12  # the canonical contract's finest amount


class NeedsObject(LookupError):
    """The subscription refers to a Stripe object (a discount, a coupon) that the payload
    does not carry and the ledger has not learned yet: mapping it now would be a guess."""

    def __init__(self, kind: str, object_id: str) -> None:
        how = {"discount": "its customer.discount.* event", "coupon": "its coupon.* event",
               "price": "the price with its tiers (expand[]=tiers)"}[kind]
        super().__init__(f"needs {kind} {object_id}, not known yet (deliver {how}, or "
                         "import it with `revledger import stripe`)")
        self.object_id = object_id


@dataclass(frozen=True)
class Policy:
    """The choices Stripe offers in its MRR settings; the defaults are Stripe's own."""

    repeating_coupons: bool = False  # do `repeating` coupons reduce MRR while they run?
    cancel_when_scheduled: bool = True  # does `cancel_at_period_end` stop counting at once?


STRIPE_DEFAULT = Policy()

Lookup = Callable[[str], Mapping[str, Any] | None]  # a learned Stripe object by id


@dataclass(frozen=True)
class Terms:
    plan: str
    amount: str
    currency: str
    interval: str
    interval_count: int
    quantity: int


def minor_per_major(currency: str) -> int:
    if currency in _ZERO_DECIMAL:
        return 1
    return 1000 if currency in _THREE_DECIMAL else 100


def subscription_terms(sub: Mapping[str, Any], at: int, lookup: Lookup,
                       policy: Policy, discounted: bool = True) -> Terms:
    """The canonical terms of a Subscription object at Unix time `at`. `discounted` False
    leaves discounts out (an inactive state counts for nothing, so none is looked up)."""
    items = sub["items"]["data"]
    if not items:
        raise ValueError("no items")
    if sub["items"].get("has_more"):  # a partial list would be a wrong amount
        raise ValueError("the items list is cut short (has_more): import the subscription "
                         "with all its items")
    lines = [_line(item, sub, lookup) for item in items]
    currency = lines[0][1]
    if any(c != currency for _, c, _, _ in lines):
        raise ValueError("items in different currencies")
    plan = "+".join(str(p) for _, _, _, p in lines)
    counted = [(total, period) for total, _, period, _ in lines if period is not None]
    if discounted:
        counted = _discount(sub, items, counted, lines, at, lookup, policy, currency)
    periods = {period for _, period in counted}
    if not periods:  # only metered prices: no recurring amount at all
        interval, count = lines[0][2] or ("month", 1)
        return Terms(plan, "0", currency, interval, count, 1)
    if len(periods) == 1:
        (interval, count), = periods
        total = sum((t for t, _ in counted), Decimal(0))
        single = _single(items, lines, counted, discounted and _has_discounts(sub, items))
        if single is not None:
            return Terms(plan, single[0], currency, interval, count, single[1])
        return Terms(plan, _text(total), currency, interval, count, 1)
    # Mixed intervals (Stripe allows them since 2025-07-30.basil): one amount per common
    # period, `year` x the least common multiple of the items' year fractions, so that
    # amount x F / interval_count is exactly the sum of the items' MRR.
    per_year = {p: Fraction(PER_YEAR[p[0]], p[1]) for p in periods}
    years = lcm(*(f.denominator for f in per_year.values()))
    if years > 1000:
        raise ValueError("mixed intervals with no common period of at most 1000 years")
    total = sum((t * int(per_year[p] * years) for t, p in counted), Decimal(0))
    return Terms(plan, _text(total), currency, "year", years, 1)


def _line(item: Mapping[str, Any], sub: Mapping[str, Any],
          lookup: Lookup) -> tuple[Decimal, str, Any, str]:
    """(amount per period after inclusive tax, currency, (interval, count) or None for a
    metered price, price id) of one subscription item."""
    price = item.get("price") or item.get("plan")
    if not price:
        raise ValueError("an item has neither price nor plan")
    if price.get("billing_scheme") == "tiered" and not price.get("tiers"):
        # Webhooks never expand `tiers`: the price as learned from a backfill has them.
        learned = lookup(str(price["id"])) or {}
        if learned.get("tiers"):
            price = {**price, "tiers": learned["tiers"],
                     "tiers_mode": learned.get("tiers_mode") or price.get("tiers_mode")}
    currency = str(price["currency"]).upper()
    recurring = price.get("recurring") or price  # a legacy plan carries interval itself
    period = (str(recurring["interval"]), int(recurring.get("interval_count") or 1))
    if recurring.get("usage_type") == "metered":
        return Decimal(0), currency, None, str(price["id"])
    quantity = item.get("quantity")
    quantity = 1 if quantity is None else int(quantity)
    minor = _price_amount(price, quantity)
    return _less_inclusive_tax(minor / minor_per_major(currency), item, sub), currency, \
        period, str(price["id"])


def _price_amount(price: Mapping[str, Any], quantity: int) -> Decimal:
    """The price at `quantity`, in minor units, exactly."""
    if quantity < 0:
        raise ValueError(f"quantity {quantity}")
    if price.get("billing_scheme") == "tiered":
        tiers = price.get("tiers")
        if not tiers:
            raise NeedsObject("price", str(price["id"]))
        return _tiered(tiers, str(price.get("tiers_mode")), quantity)
    transform = price.get("transform_quantity") or price.get("transform_usage")
    if transform:
        divided = Decimal(quantity) / int(transform["divide_by"])
        rounding = ROUND_CEILING if transform.get("round") == "up" else ROUND_FLOOR
        quantity = int(divided.to_integral_value(rounding=rounding))
    return _decimal(price, "unit_amount", "amount") * quantity


def _tiered(tiers: list[Mapping[str, Any]], mode: str, quantity: int) -> Decimal:
    """Stripe's tiers (docs.stripe.com/products-prices/pricing-models#tiered-pricing):
    `volume` prices every unit at the tier the quantity falls in; `graduated` prices each
    unit at its own tier. A tier's flat amount is charged once when the quantity reaches
    it. Quantity 0 costs nothing."""
    if quantity == 0:
        return Decimal(0)
    total, below = Decimal(0), 0
    for tier in tiers:
        upto = tier.get("up_to")
        upto = None if upto in (None, "inf") else int(upto)
        unit = _decimal(tier, "unit_amount")
        flat = _decimal(tier, "flat_amount")
        if mode == "volume":
            if upto is None or quantity <= upto:
                return unit * quantity + flat
        else:
            units = (quantity if upto is None else min(quantity, upto)) - below
            total += unit * units + flat
            if upto is None or quantity <= upto:
                return total
            below = upto
    raise ValueError("the quantity is beyond the last tier")


def _decimal(obj: Mapping[str, Any], key: str, legacy: str | None = None) -> Decimal:
    """`key_decimal` (exact, up to 12 places) if given, else the integer `key`."""
    if obj.get(key + "_decimal") is not None:
        return Decimal(str(obj[key + "_decimal"]))
    value = obj.get(key)
    if value is None and legacy is not None:
        value = obj.get(legacy)
    if isinstance(value, bool) or not isinstance(value, int | type(None)):
        raise ValueError(f"{key} is not an integer")
    return Decimal(value or 0)


def _less_inclusive_tax(amount: Decimal, item: Mapping[str, Any],
                        sub: Mapping[str, Any]) -> Decimal:
    """An amount that includes tax at rates the payload carries (TaxRate objects with
    `inclusive`: the item's `tax_rates`, else the subscription's `default_tax_rates`),
    without it: tax is not revenue."""
    rates = item.get("tax_rates") or sub.get("default_tax_rates") or []
    percent = sum((Decimal(str(r["percentage"])) for r in rates
                   if isinstance(r, dict) and r.get("inclusive")), Decimal(0))
    return amount if not percent else amount * 100 / (100 + percent)


def _has_discounts(sub: Mapping[str, Any], items: list[Mapping[str, Any]]) -> bool:
    return bool(_refs(sub) or any(_refs(item) for item in items))


def _single(items: list[Any], lines: list[Any], counted: list[Any],
            discounts: bool) -> tuple[str, int] | None:
    """(unit amount, quantity) where one licensed, undiscounted, untaxed per-unit item is
    the whole subscription: seat changes then read as quantity changes."""
    if len(items) != 1 or discounts or len(counted) != 1:
        return None
    price = items[0].get("price") or items[0].get("plan")
    if price.get("billing_scheme") == "tiered" or price.get("transform_quantity") or \
            price.get("transform_usage") or items[0].get("tax_rates"):
        return None
    quantity = items[0].get("quantity")
    quantity = 1 if quantity is None else int(quantity)
    currency = lines[0][1]
    unit = _decimal(price, "unit_amount", "amount") / minor_per_major(currency)
    if unit * quantity != counted[0][0]:  # an inclusive default tax rate applied
        return None
    if unit != unit.quantize(_PLACES):  # finer than the contract keeps: the whole amount
        return None  # is rounded once instead, or the quantity would multiply the rounding
    return _text(unit), quantity


def _refs(obj: Mapping[str, Any]) -> list[Any]:
    """The discounts an object carries: `discounts` (ids or objects) or the legacy
    singular `discount` (an object, before 2025-03-31.basil)."""
    refs = [d for d in (obj.get("discounts") or []) if d]
    if isinstance(obj.get("discount"), dict):
        legacy = obj["discount"]
        if not any((isinstance(d, dict) and d.get("id") and d.get("id") == legacy.get("id"))
                   or d == legacy.get("id") for d in refs):
            refs.append(legacy)
    return refs


def _coupon(ref: Any, lookup: Lookup) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(discount, coupon) of a discount reference: an id looked up in what the ledger
    learned, or an object whose coupon is embedded (`coupon`, before 2025-09-30.clover),
    an id under `source.coupon` (since), or expanded there."""
    discount = ref if isinstance(ref, dict) else lookup(str(ref))
    if discount is None:
        raise NeedsObject("discount", str(ref))
    coupon = discount.get("coupon") or (discount.get("source") or {}).get("coupon")
    if isinstance(coupon, str):
        found = lookup(coupon)
        if found is None:
            raise NeedsObject("coupon", coupon)
        coupon = found
    if not isinstance(coupon, dict):
        raise ValueError(f"discount {discount.get('id')} has no coupon")
    return discount, coupon


def _applies(coupon: Mapping[str, Any], discount: Mapping[str, Any], at: int,
             policy: Policy) -> bool:
    if discount.get("start") is not None and int(discount["start"]) > at:
        return False
    if coupon.get("duration") == "forever":
        return True
    if coupon.get("duration") == "repeating" and policy.repeating_coupons:
        end = discount.get("end")
        return end is None or int(end) > at
    return False  # `once`, or `repeating` under Stripe's default


def _discount(sub: Mapping[str, Any], items: list[Mapping[str, Any]], counted: list[Any],
              lines: list[Any], at: int, lookup: Lookup, policy: Policy,
              currency: str) -> list[Any]:
    """The items' amounts less the discounts that reduce MRR: an item's own discounts on
    it; the subscription's on every item (in proportion, for an amount off), restricted to
    `applies_to.products` where the coupon says so."""
    amounts = []
    for item, (total, _, period, _) in zip(items, lines, strict=True):
        if period is None:
            continue
        for ref in _refs(item):
            discount, coupon = _coupon(ref, lookup)
            if _applies(coupon, discount, at, policy):
                total = _less(total, coupon, total, currency)
        amounts.append([total, period, _product(item)])
    for ref in _refs(sub):
        discount, coupon = _coupon(ref, lookup)
        if not _applies(coupon, discount, at, policy):
            continue
        products = (coupon.get("applies_to") or {}).get("products")
        eligible = [a for a in amounts if products is None or a[2] in products]
        base = sum((a[0] for a in eligible), Decimal(0))
        for a in eligible:
            a[0] = _less(a[0], coupon, base, currency)
    return [(total, period) for total, period, _ in amounts]


def _less(amount: Decimal, coupon: Mapping[str, Any], base: Decimal, currency: str) -> Decimal:
    """`amount` (a share of `base`) less the coupon: a percentage of it, or its share of
    an amount off the whole, never below zero."""
    if coupon.get("percent_off") is not None:
        return amount * (100 - Decimal(str(coupon["percent_off"]))) / 100
    if coupon.get("amount_off") is not None:
        if str(coupon.get("currency") or currency).upper() != currency:
            raise ValueError(f"coupon {coupon.get('id')} is in another currency")
        off = Decimal(int(coupon["amount_off"])) / minor_per_major(currency)
        if base <= 0:
            return amount
        return max(amount - off * amount / base, Decimal(0))
    return amount


def _product(item: Mapping[str, Any]) -> str | None:
    price = item.get("price") or item.get("plan") or {}
    product = price.get("product")
    return product.get("id") if isinstance(product, dict) else product


def _text(amount: Decimal) -> str:
    """At most 12 places (the contract's), rounded half-even once, after every product."""
    value = amount.quantize(_PLACES, rounding=ROUND_HALF_EVEN)
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"
