"""Stripe Event objects for tests, in the shapes of API versions before and after
2025-03-31 (billing periods on the subscription, or on its items; `discount` or
`discounts`)."""

from __future__ import annotations

from typing import Any

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
DAY = 86_400


def price(price_id: str = "price_pro", cents: int = 2900, interval: str = "month",
          count: int = 1, currency: str = "usd") -> dict[str, Any]:
    return {"id": price_id, "object": "price", "currency": currency, "unit_amount": cents,
            "recurring": {"interval": interval, "interval_count": count}}


def subscription(sub_id: str = "sub_1", customer: str = "cus_1", *, status: str = "active",
                 prices: list[tuple[dict, int]] | None = None, start: int = T0,
                 discount: dict | None = None, ended_at: int | None = None,
                 new_api: bool = True) -> dict[str, Any]:
    items = []
    for p, quantity in prices or [(price(), 1)]:
        item: dict[str, Any] = {"id": "si_" + p["id"], "object": "subscription_item",
                                "price": p, "quantity": quantity}
        if new_api:
            item |= {"current_period_start": start, "current_period_end": start + 30 * DAY}
        items.append(item)
    sub: dict[str, Any] = {
        "id": sub_id, "object": "subscription", "customer": customer, "status": status,
        "start_date": start, "created": start, "items": {"object": "list", "data": items},
        "ended_at": ended_at, "canceled_at": ended_at,
    }
    if new_api:
        sub["discounts"] = [discount] if discount else []
    else:
        sub |= {"current_period_start": start, "current_period_end": start + 30 * DAY,
                "discount": discount}
    return sub


def coupon(*, percent_off: float | None = None, amount_off: int | None = None,
           duration: str = "forever", end: int | None = None) -> dict[str, Any]:
    return {"object": "discount", "end": end,
            "coupon": {"id": "co", "percent_off": percent_off, "amount_off": amount_off,
                       "duration": duration}}


def event(evt_id: str, kind: str, obj: dict[str, Any], created: int,
          previous: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": evt_id, "object": "event", "api_version": "2025-03-31.basil",
            "type": kind, "created": created, "data": data, "livemode": False,
            "pending_webhooks": 1}
