"""One customer's fold, plainly: its visible events sorted by effective time and applied
one by one, its MRR kept per currency; and the fold again after each of its recordings,
which is what a `--known-at` query must see."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from projections.reference.events import Event, amount, visible

PER_MONTH = {"month": Fraction(1), "year": Fraction(1, 12), "week": Fraction(52, 12),
             "day": Fraction(365, 12)}


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


def versions(events: list[Event]) -> list[tuple[int, History]]:
    """One customer's fold after each of its recordings (its events recorded at one
    instant), keyed by that recording's last position: what `--known-at` must see."""
    ordered = sorted(events, key=lambda e: e.position)
    out = []
    for i, event in enumerate(ordered):
        if i + 1 == len(ordered) or ordered[i + 1].recorded_at != event.recorded_at:
            out.append((event.position, fold(visible(ordered[: i + 1]))))
    return out
