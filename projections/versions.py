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
    if (marks := _in_effective_order(recorded)) is not None:
        steps, attributes, first_paid = _versions_appended(recorded, scale, marks)
    else:
        steps, attributes, first_paid = _versions(recorded, scale, list(_recordings(recorded)))
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


Mark = tuple[str, int]  # (the latest effective instant, the last position) of a recording


def _in_effective_order(recorded: list[Fact]) -> list[Mark] | None:
    """Each recording's mark, if every fact is effective after all recorded before it
    (no void, nothing backdated) and no instant is shared by two recordings; else None.
    Then each version is the one before with entries appended: no row is ever closed."""
    marks: list[Mark] = []
    latest, recorded_at = "", ""
    for fact in recorded:
        at = fact.effective_at
        if at is None or at < latest or (at == latest and fact.recorded_at != recorded_at):
            return None
        if fact.recorded_at == recorded_at:
            marks[-1] = (at, fact.position)
        else:
            marks.append((at, fact.position))
        latest, recorded_at = at, fact.recorded_at
    return marks


def _versions_appended(recorded: list[Fact], scale: int, marks: list[Mark]
                       ) -> tuple[list[Ranged], list[Ranged], list[Ranged]]:
    """A history `_in_effective_order`, in one fold: each entry of the final lists is
    known from the first recording that reached its instant, and never closes."""
    if not marks:
        return [], [], []
    timeline = Timeline(scale)
    timeline.feed(recorded)
    steps = _known_from(timeline.steps, marks, repeats=True)
    paid = next((row for row in steps if row[1] > 0), None)
    if paid is None or paid[2] == marks[0][1]:
        first_paid = [(None, paid and paid[0], marks[0][1], None)]
    else:
        first_paid = [(None, None, marks[0][1], paid[2]), (None, paid[0], paid[2], None)]
    return steps, _known_from(timeline.attribute_steps, marks, repeats=False), first_paid


def _known_from(final: list[tuple[str, Any]], marks: list[Mark], repeats: bool
                ) -> list[Ranged]:
    """The rows of an appended list. With `repeats`, an entry with the value of the one
    before is no row (`mrr_steps`)."""
    rows: list[Ranged] = []
    k, previous = 0, 0
    for at, value in final:
        if repeats:
            if value == previous:
                continue
            previous = value
        while marks[k][0] < at:
            k += 1
        rows.append((at, value, marks[k][1], None))
    return rows
