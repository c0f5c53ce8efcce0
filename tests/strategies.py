"""The one hypothesis strategy for canonical feeds (contract v1.1, with the currencies and
exchange rates of contract v2) that property tests use.

`feeds()` draws a whole delivery: distinct events, their arrival order with duplicate
deliveries, cut into consecutive ingests. Every drawn event is valid and every delivery is
accepted (voids follow their target, a subscription keeps its customer, ids are unique),
so `DrawnFeed.recorded` is exactly what the ledger records: rejections are tested
elsewhere. Within that, it reaches every type, optional field, extra and shape the contract
allows, and draws instants from a small pool so that ties and boundaries are common.

Deliberately independent of the project's code (hypothesis and the standard library only):
a strategy built from the ledger's own parser would share its mistakes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

T = TypeVar("T")
VOID = "event.voided"
CUSTOMER_TYPES = ("customer.created", "customer.updated")
STARTS = ("subscription.started", "subscription.reactivated", "subscription.snapshot")
TERMS = ("plan", "amount", "currency", "interval", "interval_count", "quantity")


def _weighted(*choices: tuple[int, SearchStrategy[T]]) -> SearchStrategy[T]:
    """One of the strategies, picked in proportion to its weight: the common case first (it
    is what shrinking goes to), rare edges still drawn often enough to be reached."""
    return st.sampled_from([s for w, s in choices for _ in range(w)]).flatmap(lambda s: s)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# The instants events take effect at (UTC, microsecond precision, as the ledger keeps
# them). Few, so that ties are common; mostly 2023-11..2025-02, on purpose at month, year
# and leap-day boundaries; two outliers far before and after.
INSTANTS: tuple[datetime, ...] = tuple(_at(t) for t in (
    "2023-11-01T00:00:00", "2023-11-30T23:59:59.999999", "2023-12-31T23:59:59.999999",
    "2024-01-01T00:00:00", "2024-01-15T08:30:00.250", "2024-01-31T23:59:59.999999",
    "2024-02-01T00:00:00", "2024-02-29T00:00:00", "2024-02-29T23:59:59.999999",
    "2024-03-01T00:00:00", "2024-06-30T23:59:59.999999", "2024-12-31T23:59:59.999999",
    "2025-01-01T00:00:00", "2025-02-28T12:00:00.123456",
    "2016-12-31T23:59:59.999999",  # a real leap second followed it
    "2026-06-30T12:00:00",  # later than everything else
))
OFFSETS: dict[str, timedelta] = {
    "Z": timedelta(0), "+00:00": timedelta(0), "+05:30": timedelta(hours=5, minutes=30),
    "-08:00": timedelta(hours=-8), "+14:00": timedelta(hours=14),
}


@st.composite
def rendered(draw: st.DrawFn, instant: datetime) -> str:
    """`instant` as RFC 3339 text the ledger reads back as exactly `instant`: any offset
    (local time = the UTC instant shifted by it), 0/3/6 fractional digits when they hold
    the microseconds exactly, sometimes 9 (the ledger truncates the last 3), and for the
    last microsecond of a UTC day sometimes a leap second `23:59:60Z`."""
    if (instant.hour, instant.minute, instant.second, instant.microsecond) == (
        23, 59, 59, 999_999,
    ) and draw(st.integers(0, 7)) == 0:
        return instant.strftime("%Y-%m-%dT23:59:60Z")
    suffix = draw(st.sampled_from(list(OFFSETS)))
    local = instant.astimezone(timezone(OFFSETS[suffix]))
    micro = local.microsecond
    digits = [d for d, fits in ((0, micro == 0), (3, micro % 1000 == 0), (6, True)) if fits]
    fraction = {0: "", 3: f".{micro // 1000:03d}", 6: f".{micro:06d}"}
    match draw(_weighted((6, st.sampled_from(digits)), (1, st.just(9)))):
        case 9:
            text = f".{micro:06d}{draw(st.integers(0, 999)):03d}"
        case n:
            text = fraction[n]
    return local.strftime("%Y-%m-%dT%H:%M:%S") + text + suffix


@st.composite
def amounts(draw: st.DrawFn) -> str:
    """Decimal strings >= 0 and < 10^12 with 0..12 decimal places: usual prices, any
    value, and the extremes (the smallest unit, the largest amount)."""
    extreme = ["0", "0.000000000001", "999999999999.999999999999", "999999999999", "0.00"]
    usual = ["9.99", "99.00", "100", "12.5", "0.01", "1000.00"]
    units = draw(_weighted((3, st.integers(0, 9_999)), (1, st.integers(0, 10**12 - 1))))
    places = draw(st.integers(0, 12))
    fraction = f".{draw(st.integers(0, 10**places - 1)):0{places}d}" if places else ""
    return draw(_weighted(
        (4, st.sampled_from(usual)), (4, st.just(f"{units}{fraction}")),
        (1, st.sampled_from(extreme)),
    ))


# contract v2: any active ISO 4217 currency, the reporting one (USD) most often; JPY and
# KWD for their 0 and 3 minor units; GBP only in rates, as the intermediate currency.
CURRENCIES = _weighted((3, st.just("USD")), (1, st.sampled_from(["EUR", "JPY", "KWD"])))
RATE_CURRENCIES = ("EUR", "GBP", "JPY", "KWD", "USD")
RATES = _weighted(
    (6, st.sampled_from(["1.10", "0.9", "1.21", "157.12", "0.30665", "1"])),
    (2, st.builds(lambda whole, part: f"{whole}.{part:06d}", st.integers(0, 999),
                  st.integers(1, 999_999))),
    (1, st.sampled_from(["0.000000000001", "999999999999.999999999999"])),  # the extremes
)
COUNTS = _weighted((8, st.integers(1, 12)), (1, st.sampled_from([1000, 997, 991, 360])))
QUANTITIES = _weighted((8, st.integers(0, 5)), (1, st.sampled_from([10**9, 10**9 - 1, 1000])))
ATTRIBUTES = st.fixed_dictionaries({}, optional={
    "region": st.sampled_from(["EU", "US"]), "tier": st.sampled_from(["a", "b"]),
})
TERM_VALUES: dict[str, SearchStrategy[Any]] = {
    "plan": st.sampled_from(["basic", "pro", "team"]), "amount": amounts(),
    "currency": CURRENCIES, "interval": st.sampled_from(["day", "week", "month", "year"]),
    "interval_count": COUNTS, "quantity": QUANTITIES,
}
# What `started`, `reactivated` and `snapshot` carry; the two counts are optional.
FULL_TERMS = st.fixed_dictionaries(
    {k: TERM_VALUES[k] for k in TERMS[:4]},
    optional={k: TERM_VALUES[k] for k in TERMS[4:]},
)
# A changed event names any non-empty subset of the terms.
SOME_TERMS = st.sets(st.sampled_from(TERMS), min_size=1).flatmap(
    lambda names: st.fixed_dictionaries({k: TERM_VALUES[k] for k in sorted(names)})
)
# Extras: fields a type does not define, kept by the ledger and ignored by the metrics.
UNKNOWN = _weighted((7, st.just({})), (1, st.fixed_dictionaries({"source": st.just("csv")})))
CANCEL_EXTRAS = _weighted((1, st.just({})), (1, st.fixed_dictionaries({}, optional={
    "amount": amounts(), "quantity": QUANTITIES, "attributes": ATTRIBUTES,
    "plan": TERM_VALUES["plan"],
})))
TYPE_WEIGHTS = {
    "customer.created": 2, "customer.updated": 1, "subscription.started": 3,
    "subscription.changed": 3, "subscription.cancelled": 2, "subscription.reactivated": 1,
    "subscription.snapshot": 2,
}


@dataclass(frozen=True)
class DrawnFeed:
    """A drawn delivery. `events`: the distinct events, each once, in the order they are
    first delivered (so `events == [e for batch in recorded for e in batch]`). `ingests`:
    what is delivered, in arrival order, a duplicate delivery being the very same dict
    again; 1..max_ingests consecutive ingests, none empty."""

    events: list[dict[str, Any]]
    ingests: list[list[dict[str, Any]]]

    @property
    def recorded(self) -> list[list[dict[str, Any]]]:
        """Per ingest, the events the ledger records, in arrival order: each event_id's
        first delivery only (a later delivery, in any ingest, is a duplicate)."""
        seen: set[str] = set()
        batches: list[list[dict[str, Any]]] = []
        for ingest in self.ingests:
            batches.append([])
            for event in ingest:
                if event["event_id"] not in seen:
                    seen.add(event["event_id"])
                    batches[-1].append(event)
        return batches


def _event(draw: st.DrawFn, type_: str, customer: str, sub: str | None, subs: list[str],
           at: datetime) -> dict[str, Any]:
    """The fields of one non-void event of `type_` (`event_id` is added by the caller)."""
    event: dict[str, Any] = {"type": type_, "effective_at": draw(rendered(at)),
                             "customer_id": customer}
    if type_ == "customer.created":
        event |= draw(st.fixed_dictionaries({}, optional={"attributes": ATTRIBUTES}))
    elif type_ == "customer.updated":
        event["attributes"] = draw(ATTRIBUTES)
    if sub is None:  # a customer event may carry the billing system's subscription_id
        if subs and draw(st.integers(0, 5)) == 0:
            event["subscription_id"] = draw(st.sampled_from(subs))
        return event | draw(UNKNOWN)
    event["subscription_id"] = sub
    if type_ in STARTS:
        event |= draw(FULL_TERMS)
    # a snapshot's status, or (now and then) an extra `status` on a start: ignored there
    if type_ == "subscription.snapshot" or (type_ in STARTS and draw(st.integers(0, 5)) == 0):
        event["status"] = draw(st.sampled_from(["active", "inactive"]))
    elif type_ == "subscription.changed":
        event |= draw(SOME_TERMS)
    elif type_ == "subscription.cancelled":
        event |= draw(CANCEL_EXTRAS)
    return event | draw(UNKNOWN)


@st.composite
def _feeds(draw: st.DrawFn, max_customers: int, max_events: int,
           max_ingests: int) -> DrawnFeed:
    """Built in the order the guarantees need: owners first (a subscription never changes
    customer), then the base events, then the arrival order, voids placed after their
    targets, duplicates after first deliveries, and last the cut into ingests."""
    customers = [f"c{i}" for i in range(1, draw(st.sampled_from(range(max_customers))) + 2)]
    # Subscription s<i> belongs to owners[i-1] for good; a customer may have several.
    n_subs = draw(_weighted((9, st.integers(1, 2 * len(customers))), (1, st.just(0))))
    owners = draw(st.lists(st.sampled_from(customers), min_size=n_subs, max_size=n_subs))
    subs = [f"s{i}" for i in range(1, len(owners) + 1)]
    owner = dict(zip(subs, owners, strict=True))
    pool = draw(st.lists(st.sampled_from(INSTANTS), min_size=1, max_size=6, unique=True))
    types = [t for t, w in TYPE_WEIGHTS.items() for _ in range(w)
             if subs or t in CUSTOMER_TYPES]

    base: list[dict[str, Any]] = []
    instant: dict[str, datetime] = {}  # event_id -> effective instant
    whose: dict[str, str] = {}  # event_id -> customer
    for i in range(1, draw(st.integers(1, max_events)) + 1):
        type_ = draw(st.sampled_from(types))
        sub = None if type_ in CUSTOMER_TYPES else draw(st.sampled_from(subs))
        customer = owner[sub] if sub else draw(st.sampled_from(customers))
        at = draw(st.sampled_from(pool))
        base.append({"event_id": f"e{i}", **_event(draw, type_, customer, sub, subs, at)})
        instant[f"e{i}"], whose[f"e{i}"] = at, customer
    latest = {c: max(instant[e] for e, o in whose.items() if o == c) for c in set(whose.values())}
    base += draw(_rates(pool))

    # Arrival order: any permutation; each void then lands anywhere after its target.
    order = list(draw(st.permutations(base)))
    targets = draw(st.lists(st.sampled_from([e["event_id"] for e in base]), unique=True,
                            max_size=max(0, min(len(base), max_events - len(whose)))))
    for i, target in enumerate(targets, 1):
        void: dict[str, Any] = {"event_id": f"v{i}", "type": VOID, "voids": target}
        # Informative only, so anything: absent, the target's, the customer's latest (or
        # later), any instant at all.
        when = draw(st.sampled_from(["absent", "target", "latest", "later", "any"]))
        if target in whose:
            later = [t for t in INSTANTS if t > latest[whose[target]]]
            choices = {"target": [instant[target]], "latest": [latest[whose[target]]],
                       "later": later or INSTANTS, "any": INSTANTS}
        else:  # a rate: it has no customer
            choices = {"target": INSTANTS, "latest": INSTANTS, "later": INSTANTS,
                       "any": INSTANTS}
        if when != "absent":
            void["effective_at"] = draw(rendered(draw(st.sampled_from(choices[when]))))
        void |= draw(st.fixed_dictionaries({}, optional={
            "reason": st.sampled_from(["entered twice", "", "refund"]),
            "attributes": ATTRIBUTES, "amount": amounts(),
            "customer_id": st.sampled_from(customers),  # ignored: the target's counts
            "subscription_id": st.sampled_from(subs or ["s0"]),
        }))
        after = next(p for p, e in enumerate(order) if e["event_id"] == target) + 1
        order.insert(draw(st.integers(after, len(order))), void)

    # Duplicate deliveries: the same dict again, anywhere after its first delivery.
    deliveries = list(order)
    for _ in range(draw(st.integers(0, max(1, max_events // 4)))):
        again = draw(st.integers(0, len(order) - 1))
        first = deliveries.index(order[again])  # by equality: ids are unique
        deliveries.insert(draw(st.integers(first + 1, len(deliveries))), order[again])

    n = len(deliveries)
    k = draw(st.sampled_from(range(min(max_ingests, n))))  # cuts between ingests
    cuts = draw(st.lists(st.integers(1, n - 1), unique=True, min_size=k, max_size=k)) if k else []
    bounds = [0, *sorted(cuts), n]
    ingests = [deliveries[a:b] for a, b in pairwise(bounds)]
    return DrawnFeed(events=order, ingests=ingests)


@st.composite
def _rates(draw: st.DrawFn, pool: list[datetime]) -> list[dict[str, Any]]:
    """`fx.rate` events (contract v2): mostly a rate of each other currency the feed may
    use, quoted either way round against USD or through EUR or GBP (triangulation), from
    before every other instant, so that most figures can be given; then a few more at
    the feed's instants (a later rate, a tie, the inverse pair). Sometimes none at all:
    every figure needing one then fails, on both sides."""
    early = INSTANTS[14]  # 2016-12-31T23:59:59.999999Z
    rates: list[dict[str, Any]] = []

    def rate(at: datetime, base: str, quote: str) -> None:
        rates.append({"event_id": f"r{len(rates) + 1}", "type": "fx.rate",
                      "effective_at": draw(rendered(at)), "base": base, "quote": quote,
                      "rate": draw(RATES)})

    if draw(st.integers(0, 5)):
        via = draw(st.sampled_from(["USD", "EUR", "GBP"]))
        if via != "USD":
            rate(early, *draw(st.permutations([via, "USD"])))
        for currency in ("EUR", "JPY", "KWD"):
            if currency != via:
                rate(early, *draw(st.permutations([currency, via])))
    for _ in range(draw(_weighted((3, st.just(0)), (2, st.integers(1, 3))))):
        base, quote = draw(st.lists(st.sampled_from(RATE_CURRENCIES), min_size=2, max_size=2,
                                    unique=True))
        rate(draw(st.sampled_from(pool)), base, quote)
    return rates


def feeds(max_customers: int = 3, max_events: int = 16,
          max_ingests: int = 3) -> SearchStrategy[DrawnFeed]:
    """Canonical feeds of contract v1.1 that the ledger accepts whole: at most
    `max_customers` customers, `max_events` distinct events (voids included; duplicate
    deliveries come on top, at most max(1, max_events // 4)) and `max_ingests` ingests."""
    if max_customers < 1 or max_events < 1 or max_ingests < 1:
        raise ValueError("feeds() needs at least one customer, one event and one ingest")
    return _feeds(max_customers, max_events, max_ingests)


def register_profiles() -> None:
    """Register the "ci", "dev" and "nightly" profiles and load one: HYPOTHESIS_PROFILE if
    set, else "ci" under CI, else "dev". No deadline and no too_slow check anywhere: an
    example ingests into a fresh database (PostgreSQL too), whose time says nothing about
    the code under test, and a deadline would only make the suite flaky."""
    common: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("ci", max_examples=25, **common)
    settings.register_profile("dev", max_examples=100, **common)
    settings.register_profile("nightly", max_examples=1000, **common)
    default = "ci" if os.environ.get("CI") else "dev"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))
