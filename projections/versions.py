"""A customer's history over system time: which rows the ledger held at each position.

The view is bitemporal. Each row (an MRR change point, an attributes change point, the
first paid instant) carries the range of positions `[known_from, known_until)` during
which a fold of the events recorded so far gives it; `known_until` is None while it
still does. The rows as the ledger knew them at position P are those whose range holds
P: `--known-at` reads them like the current rows, with no replay.

A version is taken after each instant of recording of the customer's events (one
ingest transaction), at the last of its positions. Events recorded in effective order
extend the running fold; a backdated event or a void refolds what is visible then.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any, NamedTuple

from projections.facts import Fact
from projections.fold import EFFECTIVE_ORDER, Timeline, fraction, scale_of, visible

Ranged = tuple[Any, Any, int, int | None]  # (key, value, known_from, known_until)
_KEY = itemgetter(0)
_RANGE_ORDER = itemgetter(0, 2)


class Versions(NamedTuple):
    """A customer's rows with their ranges, each list by key then `known_from`."""

    steps: list[Ranged]  # (effective_at, mrr: Fraction, ...)
    attributes: list[Ranged]  # (effective_at, attributes: dict, ...)
    first_paid: list[Ranged]  # (None, first paid instant or None, ...)


class _Ranges:
    """Rows keyed by what identifies them, each open from the position it appeared at."""

    __slots__ = ("closed", "open")

    def __init__(self) -> None:
        self.open: dict[Any, tuple[Any, int]] = {}  # in key order
        self.closed: list[Ranged] = []

    def update(self, position: int, rows: dict[Any, Any]) -> None:
        """The rows from `position` on are `rows`: close what changed, open what is new."""
        open_ = self.open
        for key, (value, since) in list(open_.items()):
            if key not in rows or rows[key] != value:
                self.closed.append((key, value, since, position))
                del open_[key]
        for key, value in rows.items():
            if key not in open_:
                open_[key] = (value, position)
        if len(rows) > 1:
            self.open = dict(sorted(open_.items(), key=_KEY))

    def rows(self) -> list[Ranged]:
        current = [(key, value, since, None) for key, (value, since) in self.open.items()]
        return sorted(self.closed + current, key=_RANGE_ORDER) if self.closed else current


def fold_versions(facts: Iterable[Fact]) -> Versions:
    """Every version of one customer's history, from all its facts (any order)."""
    recorded = sorted(facts)  # by position
    scale = scale_of(recorded)
    batches = list(_recordings(recorded))
    if _appended_only(recorded):
        steps, attributes, first_paid = _versions_appended(Timeline(scale), batches)
    else:
        steps, attributes, first_paid = _versions(recorded, scale, batches)
    return Versions([(at, fraction(value, scale), *range_) for at, value, *range_ in steps],
                    attributes, first_paid)


def _recordings(recorded: list[Fact]) -> Iterator[tuple[int, list[Fact]]]:
    """(last position, facts) of each instant of recording, in order."""
    begin = 0
    for end in range(1, len(recorded) + 1):
        if end == len(recorded) or recorded[end].recorded_at != recorded[begin].recorded_at:
            yield recorded[end - 1].position, recorded[begin:end]
            begin = end


def _appended_only(recorded: list[Fact], latest: str = "") -> bool:
    """Whether each fact is effective after all recorded before it (no void, nothing
    backdated), `latest` included: then each version extends the one before."""
    for fact in recorded:
        if fact.effective_at is None or fact.effective_at < latest:
            return False
        latest = fact.effective_at
    return True


def _versions(recorded: list[Fact], scale: int, batches: list[tuple[int, list[Fact]]]
              ) -> tuple[list[Ranged], list[Ranged], list[Ranged]]:
    """Any history: a version that only extends the one before is fed on, any other is
    folded from the facts visible then; each is compared whole with the one before."""
    steps, attributes, first_paid = _Ranges(), _Ranges(), _Ranges()
    timeline, latest, seen = Timeline(scale), "", 0
    for position, batch in batches:
        seen += len(batch)
        if _appended_only(batch, latest):
            timeline.feed(batch)
            latest = batch[-1].effective_at  # type: ignore[assignment]
        else:
            timeline = Timeline(scale)
            ordered = sorted(visible(recorded[:seen]), key=EFFECTIVE_ORDER)
            timeline.feed(ordered)
            latest = ordered[-1].effective_at if ordered else ""  # type: ignore[assignment]
        mrr = dict(timeline.mrr_steps())
        steps.update(position, mrr)
        attributes.update(position, dict(timeline.attribute_steps))
        first_paid.update(position, {None: next((at for at, v in mrr.items() if v > 0), None)})
    return steps.rows(), attributes.rows(), first_paid.rows()


Mark = tuple[int, int, Any]  # (position, entries, the last entry): a list as it was then
Held = tuple[Any, int] | None  # (value, known_from) of an entry's open row, if it is one


def _versions_appended(timeline: Timeline, batches: list[tuple[int, list[Fact]]]
                       ) -> tuple[list[Ranged], list[Ranged], list[Ranged]]:
    """A history whose facts were recorded in effective order, in one fold.

    The fold only appends to its lists or replaces their last entry (several events at
    one instant), so a version's list is the final list up to the entry that was last
    then, and that entry as it was: marking both after each recording is enough."""
    steps: list[Mark] = []
    attributes: list[Mark] = []
    for position, batch in batches:
        timeline.feed(batch)
        raw, attrs = timeline.steps, timeline.attribute_steps
        steps.append((position, len(raw), raw[-1] if raw else None))
        attributes.append((position, len(attrs), attrs[-1] if attrs else None))
    return (_ranged(timeline.steps, steps, repeats=True),
            _ranged(timeline.attribute_steps, attributes, repeats=False),
            _first_paid(timeline.steps, steps))


def _ranged(final: list[tuple[str, Any]], marks: list[Mark], repeats: bool) -> list[Ranged]:
    """The rows of every version of an appended list, by key then `known_from`. With
    `repeats`, an entry with the value of the one before is no row (`mrr_steps`)."""
    rows: list[Ranged] = []
    done = 0  # the entries before this one are final
    tail: tuple[int, Held] = (0, None)  # the last entry of the version before, as held
    for position, entries, last in marks:
        if not entries:
            continue
        t = entries - 1
        for i in range(done, t):  # final from this version on
            at, value = final[i]
            held = _held(rows, at, tail[1] if tail[0] == i else None, value,
                         not repeats or value != (final[i - 1][1] if i else 0), position)
            if held is not None:
                rows.append((at, *held, None))
        done = t
        at, value = last
        tail = (t, _held(rows, at, tail[1] if tail[0] == t else None, value,
                         not repeats or value != (final[t - 1][1] if t else 0), position))
    if tail[1] is not None:
        rows.append((final[tail[0]][0], *tail[1], None))
    return rows


def _held(rows: list[Ranged], at: str, held: Held, value: Any, is_row: bool,
          position: int) -> Held:
    """An entry's open row from `position` on; the one it held is closed if it changed."""
    if held is not None:
        if is_row and held[0] == value:
            return held
        rows.append((at, *held, position))
    return (value, position) if is_row else None


def _first_paid(final: list[tuple[str, int]], marks: list[Mark]) -> list[Ranged]:
    """The first paid instant of every version of an appended MRR list."""
    paid_row = next((i for i, (_, value) in enumerate(final)
                     if value > 0 and value != (final[i - 1][1] if i else 0)), None)
    rows: list[Ranged] = []
    for position, entries, last in marks:
        last_i = entries - 1
        if paid_row is not None and paid_row < last_i:
            paid = final[paid_row][0]
        elif entries and last[1] > 0 and last[1] != (final[last_i - 1][1] if last_i else 0):
            paid = last[0]
        else:
            paid = None
        if not rows or rows[-1][1] != paid:
            if rows:
                rows[-1] = (*rows[-1][:3], position)
            rows.append((None, paid, position, None))
    return rows
