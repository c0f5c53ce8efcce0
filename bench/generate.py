"""A deterministic generator of realistic canonical feeds, for benchmarks and tests.

Customers sign up over 2022-2025 with region/tier attributes and one to three
subscriptions: monthly, annual, weekly or daily plans, some starting with a free trial;
then upgrades, downgrades, seat changes, cancellations and reactivations. Delivery is as
billing webhooks deliver: mostly in order, some events days late, some twice, and a few
mistakes voided and re-sent corrected. The same seed always gives the same bytes.

    python bench/generate.py --customers 20000 > feed.jsonl     # ~137k events
    python bench/generate.py --customers 20000 --currencies > fx.jsonl

With `--currencies`, the very same business bills 30% of its customers in one of ten
other currencies (the rest in USD, the reporting currency), and the feed carries the
ECB-style rates to convert them: EUR -> each of the ten, and EUR -> USD (a USD ledger
converts through EUR), once a month from 2022 and every day of the year up to
2025-06-30, each delivered on its day.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import orjson

START = datetime(2022, 1, 1, tzinfo=UTC)
SPAN_DAYS = 4 * 365
PLANS = {"month": ("29.00", "99.00", "249.00", "999.00"), "year": ("290.00", "990.00", "9990.00"),
         "week": ("9.00", "19.00"), "day": ("1.50", "3.00")}
REGIONS = ("EU", "NA", "APAC", "LATAM")
# the other currencies of the multi-currency feed, and EUR -> each at the start (and USD)
FOREIGN = {"EUR": 1, "GBP": 0.85, "JPY": 160, "CHF": 0.95, "CAD": 1.48, "AUD": 1.64,
           "SEK": 11.4, "NOK": 11.6, "DKK": 7.46, "PLN": 4.32}
DAILY_FROM, DAILY_TO = datetime(2024, 6, 30, tzinfo=UTC), datetime(2025, 6, 30, tzinfo=UTC)
TIERS = ("smb", "mid", "enterprise")


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Customer:
    def __init__(self, rng: random.Random, number: int, currency: str = "USD") -> None:
        self.rng = rng
        self.currency = currency
        self.id = f"cus_{number:07d}"
        self.events: list[tuple[datetime, dict[str, Any]]] = []
        self.serial = 0

    def emit(self, moment: datetime, type: str, **fields: Any) -> dict[str, Any]:
        self.serial += 1
        event = {"event_id": f"evt_{self.id}_{self.serial:03d}", "type": type,
                 "effective_at": _at(moment), "customer_id": self.id, **fields}
        self.events.append((moment, event))
        return event

    def life(self) -> None:
        rng = self.rng
        signup = START + timedelta(days=rng.randrange(SPAN_DAYS), seconds=rng.randrange(86400))
        self.emit(signup, "customer.created",
                  attributes={"region": rng.choice(REGIONS), "tier": rng.choice(TIERS)})
        for index in range(rng.choice((1, 1, 1, 1, 2, 2, 3))):
            self.subscription(f"sub_{self.id}_{index}", signup + timedelta(days=30 * index))
        if rng.random() < 0.15:
            self.emit(signup + timedelta(days=rng.randrange(30, 700)), "customer.updated",
                      attributes={"tier": rng.choice(TIERS)})

    def subscription(self, sub: str, moment: datetime) -> None:
        rng = self.rng
        interval = rng.choices(("month", "year", "week", "day"), (70, 20, 6, 4))[0]
        amount = rng.choice(PLANS[interval])
        terms = {"subscription_id": sub, "plan": f"{interval}-{amount}", "currency": self.currency,
                 "interval": interval, "quantity": rng.choice((1, 1, 1, 2, 5))}
        if rng.random() < 0.25:  # a free trial first, converted two weeks later (or not)
            self.emit(moment, "subscription.started", **terms, amount="0.00")
            moment += timedelta(days=14)
            if rng.random() < 0.3:
                self.emit(moment, "subscription.cancelled", subscription_id=sub)
                return
            self.emit(moment, "subscription.changed", subscription_id=sub, amount=amount)
        else:
            self.emit(moment, "subscription.started", **terms, amount=amount)
        active = True
        for _ in range(rng.choice((0, 1, 2, 2, 3, 4, 5))):
            moment += timedelta(days=rng.randrange(20, 240), hours=rng.randrange(24))
            roll = rng.random()
            if not active:
                self.emit(moment, "subscription.reactivated", **terms,
                          amount=rng.choice(PLANS[interval]))
                active = True
            elif roll < 0.35:
                self.emit(moment, "subscription.changed", subscription_id=sub,
                          amount=rng.choice(PLANS[interval]))
            elif roll < 0.6:
                self.emit(moment, "subscription.changed", subscription_id=sub,
                          quantity=rng.randrange(1, 20))
            elif roll < 0.7:
                self.emit(moment, "subscription.changed", subscription_id=sub,
                          plan="annual-switch", interval="year", amount="1990.00")
            else:
                self.emit(moment, "subscription.cancelled", subscription_id=sub)
                active = False


def rates(seed: int = 7) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """(effective instant, fx.rate) of EUR -> USD and EUR -> each other currency: a random
    walk, monthly from 2022-01, daily over the year to 2025-06-30."""
    rng = random.Random(seed + 2)
    level = {"USD": 1.09, **{c: float(v) for c, v in FOREIGN.items() if c != "EUR"}}
    day = START
    while day <= DAILY_TO:
        for currency in level:
            level[currency] *= 1 + rng.uniform(-0.004, 0.004)
            yield day, {"event_id": f"fx:{day.date()}:EUR/{currency}", "type": "fx.rate",
                        "effective_at": _at(day), "base": "EUR", "quote": currency,
                        "rate": f"{level[currency]:.6f}"}
        day += timedelta(days=1) if day >= DAILY_FROM else timedelta(days=30)


def generate(customers: int, seed: int = 7, currencies: bool = False
             ) -> Iterator[dict[str, Any]]:
    """Events in delivery order: by recorded day, with late, repeated and voided ones.
    With `currencies`, the same events, 30% of customers billed in another currency (a
    draw of its own: the rest of the feed is the single-currency one), and the rates."""
    rng = random.Random(seed)
    billed = random.Random(seed + 1)
    deliveries: list[tuple[datetime, int, dict[str, Any]]] = []
    order = 0
    if currencies:
        for moment, rate in rates(seed):
            deliveries.append((moment + timedelta(hours=15), order, rate))
            order += 1
    for number in range(customers):
        currency = "USD"
        if currencies and billed.random() < 0.3:
            currency = billed.choice(sorted(FOREIGN))
        customer = _Customer(rng, number, currency)
        customer.life()
        for moment, event in customer.events:
            delivered = moment + timedelta(seconds=rng.randrange(60))
            if rng.random() < 0.03:  # backdated: arrives days after it took effect
                delivered += timedelta(days=rng.randrange(1, 45))
            deliveries.append((delivered, order, event))
            order += 1
            if rng.random() < 0.02:  # delivered twice
                deliveries.append((delivered + timedelta(minutes=5), order, event))
                order += 1
            if rng.random() < 0.01 and event["type"] != "customer.created":
                void = {"event_id": event["event_id"] + "_void", "type": "event.voided",
                        "voids": event["event_id"], "reason": "sent in error"}
                deliveries.append((delivered + timedelta(days=2), order, void))
                order += 1
    deliveries.sort(key=lambda d: (d[0], d[1]))
    for _, _, event in deliveries:
        yield event


@click.command()
@click.option("--customers", default=20_000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--currencies", is_flag=True, help="30% of customers in 10 other currencies, "
              "with a year of daily rates.")
def main(customers: int, seed: int, currencies: bool) -> None:
    """Write a canonical JSON Lines feed to stdout."""
    out = sys.stdout.buffer
    for event in generate(customers, seed, currencies):
        out.write(orjson.dumps(event) + b"\n")


if __name__ == "__main__":
    main()
