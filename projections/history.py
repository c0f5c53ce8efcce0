"""One customer's bitemporal rows, kept current recording by recording.

A version (the rows a fold of the customer's visible facts gives after one recording)
differs from the one before only where the recording changed something, so it is not
folded again from the customer's first fact. A subscription's states are kept fact by
fact: a fact inserted in the past (or voided) is applied from its place until the states
meet the old ones again (the next event that sets every term, usually), and only the
customer's MRR change points from there are compared with the rows held open. The cost of
a recording is then its own facts, the change points it moves and a binary search, not
the customer's whole history (webhooks deliver one event at a time, often late).

The customer's MRR is kept per currency billed (contract v2: converted only when a figure
is asked for), each a step function: at each instant, the sum over its subscriptions of
the change their facts at that instant make in that currency (a fact that moves a
subscription to another currency takes its MRR out of the old one and into the new).
Its change points, keyed (currency, instant) where that sum is not 0, are exactly the
`mrr_steps` of a fold (`projections.fold.Timeline`), which is what keeps these rows
byte-identical to a rebuild.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from ledger.kinds import PRICED, VOID
from projections.facts import Fact
from projections.fold import EFFECTIVE_ORDER, fraction, scale_for
from projections.mrr import SubscriptionState, apply, decimals_beyond_cents, scaled_mrr

Ranged = tuple[Any, Any, int, int | None]  # (key, value, known_from, known_until)
Point = tuple[str, str]  # (currency, effective_at): where the MRR in a currency changes
_START = SubscriptionState()
_LAST = chr(0x10FFFF)  # after every instant: (currency, _LAST) ends a currency's points


class Ranges:
    """Rows keyed by what identifies them, each open from the position it appeared at;
    with the changes since the last `flush` (for a view that writes only those)."""

    __slots__ = ("closed", "inserted", "open", "updated")

    def __init__(self) -> None:
        self.open: dict[Any, tuple[Any, int]] = {}
        self.closed: list[Ranged] = []
        self.inserted: dict[tuple[Any, int], list] = {}  # opened since the last flush
        self.updated: list[tuple[Any, int, int]] = []  # (key, since, until) of older rows

    def put(self, position: int, key: Any, value: Any) -> None:
        """From `position` on the row under `key` is `value` (None: there is none)."""
        held = self.open.get(key)
        if held is not None and held[0] == value:
            return
        if held is not None:
            self.closed.append((key, held[0], held[1], position))
            del self.open[key]
            if (pending := self.inserted.get((key, held[1]))) is not None:
                pending[3] = position
            else:
                self.updated.append((key, held[1], position))
        if value is not None:
            self.open[key] = (value, position)
            self.inserted[(key, position)] = [key, value, position, None]

    def rows(self) -> list[Ranged]:
        current = [(key, value, since, None) for key, (value, since) in self.open.items()]
        return sorted(self.closed + current, key=_range_order)

    def flush(self) -> tuple[list[Ranged], list[tuple[Any, int, int]]]:
        """(rows to insert, (key, since, until) of stored rows to close) since last time."""
        out = ([tuple(r) for r in self.inserted.values()], self.updated)  # type: ignore[misc]
        self.inserted, self.updated = {}, []
        return out  # type: ignore[return-value]


def _range_order(row: Ranged) -> tuple:
    return (row[0] or "", row[2])


class _Subscription:
    """One subscription's visible facts in effective order, with the state and MRR
    (a numerator over the history's scale) after each."""

    __slots__ = ("facts", "keys", "mrr", "states")

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.keys: list[tuple[str, int]] = []
        self.states: list[SubscriptionState] = []
        self.mrr: list[int] = []


class History:
    """A customer's rows over system time, fed its recordings in order (`record`)."""

    def __init__(self) -> None:
        self.counts: set[int] = {1}
        self.decimals = 0
        self.scale = 12
        self.subscriptions: dict[str, _Subscription] = {}
        self.facts: dict[str, Fact] = {}  # visible facts by event id (what a void finds)
        self.attribute_facts: list[Fact] = []  # in effective order
        self.delta: dict[Point, int] = {}  # the MRR change at each point (never 0)
        self.instants: list[Point] = []  # the keys of `delta`, in order
        self.total: dict[Point, int] = {}  # point -> the MRR in its currency from then on
        self.steps, self.attributes, self.first_paid = Ranges(), Ranges(), Ranges()
        self.recorded_at: str | None = None  # of the last recording

    def record(self, position: int, facts: Iterable[Fact]) -> None:
        """The version after one recording (its facts in recorded order), at `position`,
        the recording's last."""
        moved: set[Point] = set()
        attributes = False
        for fact in facts:
            self.recorded_at = fact.recorded_at
            self._widen_scale(fact)
            if fact.type == VOID:
                target = self.facts.pop(fact.payload["voids"], None)
                if target is None:
                    continue
                if target.subscription_id is None:
                    self.attribute_facts.remove(target)
                    attributes = True
                else:
                    self._splice(target.subscription_id, target, None, moved)
                continue
            self.facts[fact.event_id] = fact
            if fact.subscription_id is None:
                insort(self.attribute_facts, fact, key=EFFECTIVE_ORDER)
                attributes = True
            else:
                self._splice(fact.subscription_id, None, fact, moved)
        self._mrr_rows(position, moved)
        if attributes:
            self._attribute_rows(position)
        self.first_paid.put(position, None, (self._first_paid(),))

    def versions(self) -> tuple[list[Ranged], list[Ranged], list[Ranged]]:
        """Every row so far with its range: steps (MRR as Fractions), attributes and the
        first paid instant, each by key then `known_from`."""
        return (self.steps.rows(), self.attributes.rows(),
                [(None, value[0], since, until)
                 for _, value, since, until in self.first_paid.rows()])

    def flush(self) -> tuple[list[Ranged], ...]:
        """The rows opened since the last flush and the (key, since, until) of those it
        closed, for the three tables (steps, attributes, first paid)."""
        steps, attributes, first_paid = (r.flush() for r in
                                         (self.steps, self.attributes, self.first_paid))
        return (*steps, *attributes,
                [(None, value[0], since, until) for _, value, since, until in first_paid[0]],
                first_paid[1])

    def _widen_scale(self, fact: Fact) -> None:
        """Keep every MRR a whole numerator (`projections.fold.scale_for`)."""
        if fact.type not in PRICED:
            return
        self.counts.add(fact.payload.get("interval_count") or 1)
        if (amount := fact.payload.get("amount")) is not None:
            self.decimals = max(self.decimals, decimals_beyond_cents(amount))
        scale = scale_for(self.counts, self.decimals)
        if scale != self.scale:
            factor, self.scale = scale // self.scale, scale
            for sub in self.subscriptions.values():
                sub.mrr = [m * factor for m in sub.mrr]
            self.delta = {at: d * factor for at, d in self.delta.items()}
            self.total = {at: t * factor for at, t in self.total.items()}

    def _splice(self, sid: str, old: Fact | None, new: Fact | None, moved: set[Point]
                ) -> None:
        """Remove `old` from or insert `new` into a subscription, then apply its facts
        from there until the states meet the old ones; `moved` gains the points whose
        change this altered."""
        sub = self.subscriptions.setdefault(sid, _Subscription())
        states, mrr = sub.states, sub.mrr
        fresh = -1  # the index of the inserted fact
        if new is not None:
            j = fresh = bisect_left(sub.keys, key := EFFECTIVE_ORDER(new))
            old_previous = (states[j - 1], mrr[j - 1]) if j else (_START, 0)
            sub.keys.insert(j, key)
            sub.facts.insert(j, new)
            states.insert(j, _START)
            mrr.insert(j, 0)
        else:
            assert old is not None
            j = bisect_left(sub.keys, EFFECTIVE_ORDER(old))
            old_previous = (states[j], mrr[j])
            gone: dict[Point, int] = {}
            _moves(gone, old.effective_at, (states[j - 1], mrr[j - 1]) if j else (_START, 0),
                   old_previous, -1)  # type: ignore[arg-type]
            self._apply(gone, moved)
            for column in (sub.keys, sub.facts, states, mrr):
                del column[j]
        previous = (states[j - 1], mrr[j - 1]) if j else (_START, 0)
        for i in range(j, len(sub.facts)):
            fact = sub.facts[i]
            state = apply(previous[0], fact.type, fact.payload)
            value = scaled_mrr(state, self.scale)
            value = value.numerator if type(value) is Fraction else value
            changes: dict[Point, int] = {}
            if i != fresh:  # what it changed before, taken back
                _moves(changes, fact.effective_at, old_previous, (states[i], mrr[i]), -1)  # type: ignore[arg-type]
                old_previous = (states[i], mrr[i])
            _moves(changes, fact.effective_at, previous, (state, value), 1)  # type: ignore[arg-type]
            self._apply(changes, moved)
            met = i != fresh and state == states[i]
            states[i], mrr[i] = state, value
            previous = (state, value)
            if met:  # the same state: every later fact changes what it changed before
                break

    def _apply(self, changes: dict[Point, int], moved: set[Point]) -> None:
        for point, by in changes.items():
            self._change(point, by, moved)

    def _change(self, at: Point, by: int, moved: set[Point]) -> None:
        if not by:
            return
        moved.add(at)
        value = self.delta.get(at, 0) + by
        if value:
            if at not in self.delta:
                insort(self.instants, at)
            self.delta[at] = value
        else:
            del self.delta[at]
            del self.instants[bisect_left(self.instants, at)]
            self.total.pop(at, None)

    def _mrr_rows(self, position: int, moved: set[Point]) -> None:
        """Each currency's totals again from its first moved point, until they meet the
        old ones past its last; rows put where they differ."""
        if not moved:
            return
        for at in moved:  # no longer a change point
            if at not in self.delta:
                self.steps.put(position, at, None)
        span: dict[str, tuple[str, str]] = {}  # currency -> (first, last) moved instant
        for currency, at in moved:
            first, last = span.get(currency, (at, at))
            span[currency] = (min(first, at), max(last, at))
        instants, total, delta = self.instants, self.total, self.delta
        for currency, (first, last) in span.items():
            i = bisect_left(instants, (currency, first))
            running = total[instants[i - 1]] if i and instants[i - 1][0] == currency else 0
            for k in range(i, bisect_left(instants, (currency, _LAST), i)):
                point = instants[k]
                running += delta[point]
                if total.get(point) == running:
                    if point[1] > last:
                        break
                    continue
                total[point] = running
                self.steps.put(position, point, fraction(running, self.scale))

    def _first_paid(self) -> str | None:
        """The first instant with MRR > 0 in any currency (contract v2: a rate is > 0)."""
        instants, total, paid, k = self.instants, self.total, None, 0
        while k < len(instants):
            currency, at = instants[k]
            if total[instants[k]] > 0:
                paid = at if paid is None else min(paid, at)
                k = bisect_left(instants, (currency, _LAST), k)  # the next currency's
            else:
                k += 1
        return paid

    def _attribute_rows(self, position: int) -> None:
        """The attributes folded again (customer events are few), rows put where they
        differ from those held."""
        merged: dict[str, str] = {}
        rows: dict[str, dict[str, str]] = {}
        for fact in self.attribute_facts:
            merged = {**merged, **fact.payload.get("attributes", {})}
            rows[fact.effective_at] = merged  # type: ignore[index]  # the last at an instant
        for at in [at for at in self.attributes.open if at not in rows]:
            self.attributes.put(position, at, None)
        for at, value in rows.items():
            self.attributes.put(position, at, value)


def _moves(changes: dict[Point, int], at: str, before: tuple[SubscriptionState, int],
           after: tuple[SubscriptionState, int], sign: int) -> None:
    """Add to `changes` (times `sign`) what a fact at `at` taking a subscription from
    `before` to `after` (state, MRR) changes per currency, as the fold counts it: within
    one currency the difference; into another, the old MRR out of the old currency and
    the new into the new."""
    (old_state, old), (new_state, new) = before, after
    if old_state.currency == new_state.currency:
        if new != old:
            point = (new_state.currency, at)
            changes[point] = changes.get(point, 0) + sign * (new - old)  # type: ignore[index]
        return
    if old:
        point = (old_state.currency, at)
        changes[point] = changes.get(point, 0) - sign * old  # type: ignore[index]
    if new:
        point = (new_state.currency, at)
        changes[point] = changes.get(point, 0) + sign * new  # type: ignore[index]
