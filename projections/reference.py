"""The reference: the contract's fold and metrics, written as plainly as the contract reads.

This is the check, not the product. `verify` and the tests hold the fast paths (the
incremental fold, the bitemporal versions, the column engine) to it, so it shares none of
their code: it reads the events as delivered (its own timestamp and amount parsing), keeps
every event in a list, sorts the visible ones by effective time and folds them one by one,
and answers every question by folding again. Slow on purpose; nothing here is cached,
scaled or vectorised. It imports nothing from the project.

Instants are fixed-width UTC text (`2024-01-15T08:00:00.000000Z`), which sorts in time
order. "At the end of day D" is written as "effective at or before D's last microsecond",
which needs no day after 9999-12-31.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
PER_MONTH = {"month": Fraction(1), "year": Fraction(1, 12), "week": Fraction(52, 12),
             "day": Fraction(365, 12)}


@lru_cache(maxsize=1 << 16)  # a pure function of the text; a ledger repeats its instants
def utc(text: str) -> str:
    """An RFC 3339 timestamp as fixed-width UTC text: fractions beyond microseconds are
    cut off, and a leap second (:60) is the last microsecond of its minute."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    if second == 60:
        second, micro = 59, 999999
    moment = datetime(year, month, day, hour, minute, second, micro)
    if m[8]:
        shift = timedelta(hours=int(m[9]), minutes=int(m[10]))
        moment = moment - shift if m[8] == "+" else moment + shift
    return moment.isoformat(timespec="microseconds") + "Z"


def last_instant(day: date) -> str:
    return f"{day.isoformat()}T23:59:59.999999Z"


class Event(NamedTuple):
    """A recorded event: its place in recorded order, when it was recorded, and the
    canonical record as delivered (raw JSON object)."""

    position: int
    recorded_at: str
    record: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.record["event_id"]

    @property
    def type(self) -> str:
        return self.record["type"]

    @property
    def effective_at(self) -> str:
        return utc(self.record["effective_at"])


def stored_event(position: int, state: bytes) -> Event | None:
    """The event in a stored state, as the ledger wrote it (None for its settings)."""
    data = json.loads(state)
    if "payload" not in data:
        return None
    recorded = datetime.fromisoformat(data["timestamp"]["_data_"]).astimezone(UTC)
    return Event(position, recorded.replace(tzinfo=None).isoformat(timespec="microseconds")
                 + "Z", data["payload"])


def visible(events: Iterable[Event], known_at: str | None = None) -> list[Event]:
    """The events that count: recorded by `known_at`, not voids, not voided by then."""
    seen = [e for e in events if known_at is None or e.recorded_at <= known_at]
    voided = {e.record["voids"] for e in seen if e.type == "event.voided"}
    return [e for e in seen if e.type != "event.voided" and e.event_id not in voided]


@lru_cache(maxsize=1 << 16)
def amount(text: str) -> Fraction:
    whole, _, decimals = text.partition(".")
    return Fraction(int(whole + decimals), 10 ** len(decimals))


@dataclass
class History:
    """One customer's fold: its MRR in each currency it is billed in (in the currency's
    units) and its attributes after each effective instant of its events."""

    mrr: list[tuple[str, dict[str, Fraction]]] = field(default_factory=list)
    attributes: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def steps(self) -> dict[str, list[tuple[str, Fraction]]]:
        """Per currency, the instants where its MRR changes, with the MRR from then on
        (currencies whose MRR never leaves 0 have none)."""
        out = {}
        for currency in sorted({c for _, native in self.mrr for c in native}):
            changes, previous = [], Fraction(0)
            for at, native in self.mrr:
                value = native.get(currency, Fraction(0))
                if value != previous:
                    changes.append((at, value))
                    previous = value
            if changes:
                out[currency] = changes
        return out

    @property
    def first_paid(self) -> str | None:
        return next((at for at, native in self.mrr if paying(native)), None)

    def mrr_at(self, last: str) -> dict[str, Fraction]:
        """MRR per currency once every event effective at or before `last` has applied."""
        value: dict[str, Fraction] = {}
        for at, native in self.mrr:
            if at <= last:
                value = native
        return value

    def attributes_at(self, last: str) -> dict[str, str]:
        value: dict[str, str] = {}
        for at, attributes in self.attributes:
            if at <= last:
                value = attributes
        return value


def paying(native: dict[str, Fraction]) -> bool:
    """MRR > 0 in the reporting currency: some amount is, as every rate is > 0."""
    return any(value > 0 for value in native.values())


def fold(events: Iterable[Event]) -> History:
    """One customer's visible events, folded in effective order (ties: recorded order)."""
    history = History()
    subscriptions: dict[str, dict[str, Any]] = {}
    monthly: dict[str, tuple[str | None, Fraction]] = {}  # each subscription's (currency, MRR)
    attributes: dict[str, str] = {}
    for event in sorted(events, key=lambda e: (e.effective_at, e.position)):
        r, at = event.record, event.effective_at
        if event.type.startswith("customer."):
            attributes = {**attributes, **r.get("attributes", {})}
            _set(history.attributes, at, attributes)
            continue
        state = subscriptions.setdefault(r["subscription_id"], {
            "active": False, "amount": Fraction(0), "quantity": 1, "interval": "month",
            "interval_count": 1, "currency": None})
        if event.type in ("subscription.started", "subscription.reactivated",
                          "subscription.snapshot"):
            state["amount"] = amount(r["amount"])
            state["quantity"] = r.get("quantity", 1)
            state["interval"] = r["interval"]
            state["interval_count"] = r.get("interval_count", 1)
            state["currency"] = r["currency"]
            # started and reactivated make it active (a `status` on them is an extra);
            # a snapshot's status says
            state["active"] = (event.type != "subscription.snapshot"
                               or r["status"] == "active")
        elif event.type == "subscription.changed":
            for term in ("quantity", "interval", "interval_count", "currency"):
                if term in r:
                    state[term] = r[term]
            if "amount" in r:
                state["amount"] = amount(r["amount"])
        elif event.type == "subscription.cancelled":
            state["active"] = False
        monthly[r["subscription_id"]] = (state["currency"], mrr(state))
        native: dict[str, Fraction] = {}
        for currency, value in monthly.values():
            if currency is not None:
                native[currency] = native.get(currency, Fraction(0)) + value
        _set(history.mrr, at, native)
    return history


def mrr(state: dict[str, Any]) -> Fraction:
    """amount x quantity x F / interval_count, for an active subscription."""
    if not state["active"]:
        return Fraction(0)
    return (state["amount"] * state["quantity"] * PER_MONTH[state["interval"]]
            / state["interval_count"])


def _set(steps: list, at: str, value: Any) -> None:
    """The value after every event at `at`: a later event at the same instant replaces."""
    if steps and steps[-1][0] == at:
        steps[-1] = (at, value)
    else:
        steps.append((at, value))


def customer_of(events: list[Event]) -> dict[str, str | None]:
    """Each event's customer: its own `customer_id`, or for a void its target's; None for
    an exchange rate (it belongs to no customer) and a void of one."""
    owner = {e.event_id: None if e.type == "fx.rate" else e.record["customer_id"]
             for e in events if e.type != "event.voided"}
    return {e.event_id: owner.get(e.record["voids"], "") if e.type == "event.voided"
            else owner[e.event_id] for e in events}


def versions(events: list[Event]) -> list[tuple[int, History]]:
    """One customer's fold after each of its recordings (its events recorded at one
    instant), keyed by that recording's last position: what `--known-at` must see."""
    ordered = sorted(events, key=lambda e: e.position)
    out = []
    for i, event in enumerate(ordered):
        if i + 1 == len(ordered) or ordered[i + 1].recorded_at != event.recorded_at:
            out.append((event.position, fold(visible(ordered[: i + 1]))))
    return out


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


class Reference:
    """Every metric of the contract over a ledger's events, as known at `known_at`, in
    the `reporting` currency (contract v2)."""

    def __init__(self, events: Iterable[Event], known_at: str | None = None,
                 reporting: str = "USD") -> None:
        events = list(events)
        owners = customer_of(events)
        self.reporting = reporting
        self.rates = [e for e in visible(events, known_at) if e.type == "fx.rate"]
        by_customer: dict[str, list[Event]] = {}
        for event in visible(events, known_at):
            if owners[event.event_id] is not None:
                by_customer.setdefault(owners[event.event_id], []).append(event)  # type: ignore[arg-type]
        self.histories = {c: fold(es) for c, es in sorted(by_customer.items())}

    def value(self, native: dict[str, Fraction], last: str) -> Fraction:
        """MRR in the reporting currency: each currency's amount at its rate at `last`
        (an amount of 0 needs no rate)."""
        return sum((v * rate(self.rates, c, self.reporting, last)
                    for c, v in sorted(native.items()) if v != 0), Fraction(0))

    def mrr(self, day: date) -> tuple[Fraction, int]:
        """Total MRR at the end of `day`, and the number of customers with MRR > 0."""
        natives = [h.mrr_at(last_instant(day)) for h in self.histories.values()]
        total = sum((self.value(n, last_instant(day)) for n in natives), Fraction(0))
        return total, sum(1 for n in natives if paying(n))

    def nrr(self, start: date, end: date, cohort: str | None = None,
            segment: dict[str, str | None] | None = None) -> dict[str, Any]:
        """The contract's endpoint NRR/GRR of the customers paying at the end of `start`,
        classified at constant currency (the end valued at the start's rates)."""
        r = dict.fromkeys(("starting_mrr", "ending_mrr", "expansion", "contraction",
                           "churn", "fx_impact", "constant"), Fraction(0))
        r["customers"] = 0
        s, e = last_instant(start), last_instant(end)
        for history in self.histories.values():
            if not paying(history.mrr_at(s)):
                continue
            if cohort is not None and not in_period(history.first_paid, cohort):
                continue
            attributes = history.attributes_at(s)
            if any(attributes.get(k) != v for k, v in (segment or {}).items()):
                continue
            m0 = self.value(history.mrr_at(s), s)
            c1 = self.value(history.mrr_at(e), s)
            m1 = self.value(history.mrr_at(e), e)
            r["customers"] += 1
            r["starting_mrr"] += m0
            r["ending_mrr"] += m1
            r["constant"] += c1
            r["fx_impact"] += m1 - c1
            if c1 == 0:
                r["churn"] += m0
            elif c1 > m0:
                r["expansion"] += c1 - m0
            elif c1 < m0:
                r["contraction"] += m0 - c1
        total, constant = r["starting_mrr"], r.pop("constant")
        r["nrr"] = r["ending_mrr"] / total if total else None
        r["nrr_constant_currency"] = constant / total if total else None
        r["grr"] = (total - r["contraction"] - r["churn"]) / total if total else None
        return r

    # -- the day-one figures, stated as plainly (docs/metrics.md) --------------------------

    def arr(self, day: date) -> Fraction:
        """Annual recurring revenue: twelve times the MRR at the end of `day`."""
        return self.mrr(day)[0] * 12

    def arpa(self, day: date) -> Fraction | None:
        """MRR per customer paying at the end of `day`; None when no one pays."""
        total, paying = self.mrr(day)
        return total / paying if paying else None

    def logo_churn_rate(self, start: date, end: date) -> Fraction | None:
        """Of the customers paying at the end of `start`, the share paying nothing at the
        end of `end`."""
        paid = [h for h in self.histories.values() if paying(h.mrr_at(last_instant(start)))]
        gone = [h for h in paid if not paying(h.mrr_at(last_instant(end)))]
        return Fraction(len(gone), len(paid)) if paid else None

    def quick_ratio(self, start: date, end: date) -> Fraction | None:
        """(new + expansion + reactivation) / (contraction + churn) over the months after
        `start`'s month up to `end`'s; None when nothing was lost."""
        first, last = next_month(start.isoformat()[:7]), end.isoformat()[:7]
        rows = self.movements(first, last) if first <= last else []
        up = sum((r["new"] + r["expansion"] + r["reactivation"] for r in rows), Fraction(0))
        down = sum((r["contraction"] + r["churn"] for r in rows), Fraction(0))
        return up / down if down else None

    def nrr_by(self, start: date, end: date, key: str) -> dict[str | None, dict[str, Any]]:
        """NRR/GRR per value of attribute `key` at the end of `start` among the customers
        paying then (None: those without it, whose value `get` reads as None)."""
        values = {h.attributes_at(last_instant(start)).get(key)
                  for h in self.histories.values() if paying(h.mrr_at(last_instant(start)))}
        return {value: self.nrr(start, end, segment={key: value}) for value in values}

    def movements(self, first: str, last: str) -> list[dict[str, Any]]:
        """Monthly movements of the months `first`..`last` (YYYY-MM), month-end snapshots:
        p and q' at the month before's end rates, fx = q - q' (q at the month end's)."""
        out = []
        for month in month_range(first, last):
            row: dict[str, Any] = {"month": month}
            row.update(dict.fromkeys(("new", "expansion", "contraction", "churn",
                                      "reactivation", "fx"), Fraction(0)))
            before = month_start(month)
            previous, end = _microsecond_before(before), last_instant(month_last_day(month))
            for history in self.histories.values():
                p = self.value(history.mrr_at(previous), previous)
                q_same = self.value(history.mrr_at(end), previous)
                q = self.value(history.mrr_at(end), end)
                row["fx"] += q - q_same
                if q_same > p > 0:
                    row["expansion"] += q_same - p
                elif 0 < q_same < p:
                    row["contraction"] += p - q_same
                elif p > 0 == q_same:
                    row["churn"] += p
                elif p == 0 < q_same:
                    kind = "reactivation" if paid_at_a_month_end_before(history, before) else "new"
                    row[kind] += q_same
            out.append(row)
        return out


def paid_at_a_month_end_before(history: History, before: str) -> bool:
    """Whether MRR was > 0 at the end of some month ending before `before` (a month's
    first instant). A step with MRR > 0 holds at the end of the month it falls in, unless
    the next step comes in that same month (or at the next month's first instant)."""
    steps = [(at, paying(native)) for at, native in history.mrr]
    for i, (at, paid) in enumerate(steps):
        boundary = month_start(next_month(at[:7]))
        following = steps[i + 1][0] if i + 1 < len(steps) else None
        if paid and boundary <= before and (following is None or following >= boundary):
            return True
    return False


def in_period(instant: str | None, period: str) -> bool:
    """Whether an instant lies in `2023`, `2023-Q2` or `2023-07`."""
    if instant is None:
        return False
    year, month = instant[:4], int(instant[5:7])
    if re.fullmatch(r"\d{4}", period):
        return year == period
    if m := re.fullmatch(r"(\d{4})-[Qq]([1-4])", period):
        return year == m[1] and (month - 1) // 3 + 1 == int(m[2])
    return instant[:7] == period


def month_start(month: str) -> str:
    """A month's first instant; after 9999-12, a text later than every instant."""
    return f"{month}-01T00:00:00.000000Z" if month <= "9999-12" else "9999-12-31T24"


def next_month(month: str) -> str:
    year, m = int(month[:4]), int(month[5:7])
    return f"{year + m // 12:04d}-{m % 12 + 1:02d}"


def month_last_day(month: str) -> date:
    following = next_month(month)
    if following > "9999-12":
        return date(9999, 12, 31)
    return date.fromisoformat(following + "-01") - timedelta(days=1)


def _microsecond_before(first_instant: str) -> str:
    """The last instant before a month's first: events effective then count at its end."""
    if first_instant.startswith("0001-01-01"):
        return "0000"  # before every instant
    return last_instant(date.fromisoformat(first_instant[:10]) - timedelta(days=1))


def month_range(first: str, last: str) -> list[str]:
    out = [first]
    while out[-1] < last:
        out.append(next_month(out[-1]))
    return out
