"""Stripe objects for tests, built from Stripe's own published examples.

Each API version's objects come from `tests/fixtures/stripe/<version>.json`, copied
verbatim from stripe/openapi's `openapi/fixtures3.json` at a commit when that version was
current (the file names the repository, path, commit and blob). The builders here change
values only (ids, amounts, quantities, times, statuses) and place them where that version
puts them: `plan` and `start` (2018-02-28), `price` and the singular `discount` with its
coupon expanded (2023-10-16), `discounts` as ids beside it (2025-02-24.acacia), billing
periods on the items and no `discount` (2025-03-31.basil), a discount's coupon as an id
under `source.coupon` (2025-09-30.clover). No field is invented.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import orjson

VERSIONS = ("2018-02-28", "2023-10-16", "2025-02-24.acacia", "2025-03-31.basil",
            "2025-09-30.clover")
LATEST = VERSIONS[-1]
FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
DAY = 86_400


@cache
def _objects(version: str) -> dict[str, Any]:
    """The version's example objects, with the nullable fields its schema has and the
    examples leave out (2018-02-28's, from the spec at the same commit) set to null."""
    fixture = orjson.loads((FIXTURES / f"{version}.json").read_bytes())
    objects = fixture["objects"]
    schema = fixture["source"].get("schema", {})
    for name, fields in schema.get("nullable_fields_the_examples_leave_out", {}).items():
        for key in fields:
            objects[name].setdefault(key, None)
    return objects


def example(version: str, name: str) -> dict[str, Any]:
    """A fresh copy of Stripe's example object `name` for `version`."""
    return copy.deepcopy(_objects(version)[name])


def price(version: str = LATEST, price_id: str = "price_pro", cents: int | None = 2900, *,
          decimal: str | None = None, interval: str = "month", count: int = 1,
          currency: str = "usd", usage_type: str = "licensed", tiers: list | None = None,
          tiers_mode: str | None = None, transform: dict | None = None,
          product: str = "prod_1", tax_behavior: str = "unspecified") -> dict[str, Any]:
    """A Price (a Plan in 2018-02-28, which had no prices)."""
    legacy = version == "2018-02-28"
    p = example(version, "plan" if legacy else "price")
    p.update(id=price_id, currency=currency, product=product)
    scheme = "tiered" if tiers is not None else "per_unit"
    if legacy:
        p.update(amount=cents, interval=interval, interval_count=count, usage_type=usage_type,
                 billing_scheme=scheme, tiers=tiers, tiers_mode=tiers_mode,
                 transform_usage=transform)
        return p
    p.update(unit_amount=cents, billing_scheme=scheme, tiers_mode=tiers_mode,
             transform_quantity=transform, tax_behavior=tax_behavior,
             unit_amount_decimal=decimal if decimal is not None else
             (None if cents is None else str(cents)))
    p["recurring"].update(interval=interval, interval_count=count, usage_type=usage_type)
    if tiers is not None:  # only with expand[]=tiers: webhooks leave it out
        p["tiers"] = tiers
    return p


def _plan_mirror(version: str, p: dict[str, Any]) -> dict[str, Any]:
    """The legacy `plan` Stripe still puts beside an item's `price` (same values)."""
    plan = example(version, "plan")
    recurring = p["recurring"]
    plan.update(id=p["id"], amount=p["unit_amount"], amount_decimal=p["unit_amount_decimal"],
                currency=p["currency"], interval=recurring["interval"],
                interval_count=recurring["interval_count"],
                usage_type=recurring["usage_type"], billing_scheme=p["billing_scheme"],
                tiers_mode=p["tiers_mode"], transform_usage=p["transform_quantity"],
                product=p["product"])
    return plan


def item(version: str, p: dict[str, Any], quantity: int | None = 1, *,
         item_id: str | None = None, tax_rates: list | None = None,
         discounts: list | None = None) -> dict[str, Any]:
    i = example(version, "subscription_item")
    i.update(id=item_id or "si_" + p["id"], quantity=quantity, subscription="sub_1")
    if version == "2018-02-28":
        i["plan"] = p
        return i
    i["price"] = p
    if "plan" in i:
        i["plan"] = _plan_mirror(version, p)
    if "tax_rates" in i:
        i["tax_rates"] = tax_rates or []
    if "discounts" in i:
        i["discounts"] = discounts or []
    for key in ("current_period_start", "current_period_end"):
        if key in i:
            i[key] = T0 if key.endswith("start") else T0 + 31 * DAY
    return i


def coupon(version: str = LATEST, coupon_id: str = "co_20", *,
           percent_off: float | None = None, amount_off: int | None = None,
           duration: str = "forever", months: int | None = None,
           currency: str | None = "usd") -> dict[str, Any]:
    c = example(version, "coupon")
    c.update(id=coupon_id, percent_off=percent_off, amount_off=amount_off, duration=duration,
             duration_in_months=months, currency=currency if amount_off else c.get("currency"))
    return c


def discount(version: str, discount_id: str, c: dict[str, Any], *, start: int = T0,
             end: int | None = None, customer: str = "cus_1",
             subscription: str | None = "sub_1") -> dict[str, Any]:
    """A Discount: its coupon expanded up to 2025-03-31.basil, an id under `source`
    since 2025-09-30.clover."""
    d = example(version, "discount")
    d.update(start=start, end=end, customer=customer)
    if "id" in d:
        d["id"] = discount_id
    if "subscription" in d:
        d["subscription"] = subscription
    if "source" in d:
        d["source"] = {**d["source"], "coupon": c["id"]}
    else:
        d["coupon"] = c
    return d


def tax_rate(version: str, percentage: float, inclusive: bool) -> dict[str, Any]:
    t = example(version, "tax_rate")
    t.update(percentage=percentage, inclusive=inclusive)
    return t


def subscription(version: str = LATEST, sub_id: str = "sub_1", customer: str = "cus_1", *,
                 status: str = "active", items: list[dict[str, Any]] | None = None,
                 start: int = T0, discounts: list[dict[str, Any]] | None = None,
                 cancel_at_period_end: bool = False, canceled_at: int | None = None,
                 ended_at: int | None = None, default_tax_rates: list | None = None,
                 trial_end: int | None = None) -> dict[str, Any]:
    """A Subscription in `version`'s shape. `discounts` are Discount objects: expanded
    under `discount` where the version has it, ids under `discounts` where it has that."""
    s = example(version, "subscription")
    items = items if items is not None else [item(version, price(version))]
    for i in items:
        i["subscription"] = sub_id
    s["items"]["data"] = items
    if "total_count" in s["items"]:
        s["items"]["total_count"] = len(items)
    s.update(id=sub_id, customer=customer, status=status, created=start,
             cancel_at_period_end=cancel_at_period_end, canceled_at=canceled_at,
             ended_at=ended_at, trial_end=trial_end, trial_start=start if trial_end else None)
    for key in ("cancel_at", "schedule", "pending_update"):
        if key in s:
            s[key] = None
    if "start_date" in s:
        s["start_date"] = start
    else:
        s["start"] = start
    for key in ("current_period_start", "current_period_end", "billing_cycle_anchor"):
        if key in s:
            s[key] = T0 + 31 * DAY if key == "current_period_end" else start
    if version == "2018-02-28":  # one plan: the subscription carries it and its quantity
        s.update(plan=items[0]["plan"], quantity=items[0]["quantity"])
    if "default_tax_rates" in s:
        s["default_tax_rates"] = default_tax_rates or []
    if "currency" in s:
        s["currency"] = (items[0].get("price") or items[0]["plan"])["currency"]
    discounts = discounts or []
    if "discount" in s:
        s["discount"] = discounts[0] if discounts else None
    if "discounts" in s:
        s["discounts"] = [d["id"] for d in discounts]
    return s


def event(version: str, evt_id: str, kind: str, obj: dict[str, Any], created: int,
          previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """An Event wrapping `obj` as Stripe delivers it to a webhook of `version`."""
    e = example(version, "notification_event" if version == "2018-02-28" else "event")
    e.update(id=evt_id, type=kind, created=created, api_version=version.split(".")[0]
             if version == "2018-02-28" else version, pending_webhooks=1)
    e["data"] = {"object": obj}
    if previous is not None:
        e["data"]["previous_attributes"] = previous
    return e
