"""A customer's history over system time: which rows the ledger held at each position.

The view is bitemporal. Each row (an MRR change point, an attributes change point, the
first paid instant) carries the range of positions `[known_from, known_until)` during
which a fold of the events recorded so far gives it; `known_until` is None while it
still does. The rows as the ledger knew them at position P are those whose range holds
P: `--known-at` reads them like the current rows, with no replay.

A version is taken after each instant of recording of the customer's events (one
ingest transaction), at the last of its positions. Events recorded in effective order
are one fold; otherwise each version is made from the one before where the recording
changed it (`projections.history`), never folded again from the first fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from projections.facts import Fact
from projections.fold import Timeline, fraction, scale_of
from projections.history import History, Ranged


class Versions(NamedTuple):
    """A customer's rows with their ranges, each list by key then `known_from`."""

    steps: list[Ranged]  # ((currency, effective_at), mrr: Fraction, ...)
    attributes: list[Ranged]  # (effective_at, attributes: dict, ...)
    first_paid: list[Ranged]  # (None, first paid instant or None, ...)


def fold_versions(facts: Iterable[Fact]) -> Versions:
    """Every version of one customer's history, from all its facts (any order)."""
    recorded = sorted(facts)  # by position
    if (marks := _in_effective_order(recorded)) is None:
        return Versions(*_versions(recorded))
    scale = scale_of(recorded)
    steps, attributes, paid = _versions_appended(recorded, scale, marks)
    return Versions([(at, fraction(value, scale), *range_) for at, value, *range_ in steps],
                    attributes, paid)


def recordings(recorded: list[Fact]) -> Iterator[tuple[int, list[Fact]]]:
    """(last position, facts) of each instant of recording, in order."""
    begin = 0
    for end in range(1, len(recorded) + 1):
        if end == len(recorded) or recorded[end].recorded_at != recorded[begin].recorded_at:
            yield recorded[end - 1].position, recorded[begin:end]
            begin = end


def _versions(recorded: list[Fact]) -> tuple[list[Ranged], list[Ranged], list[Ranged]]:
    """Any history: each version from the one before (`projections.history`)."""
    history = History()
    for position, batch in recordings(recorded):
        history.record(position, batch)
    return history.versions()


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
    steps = [((currency, at), *rest) for currency in sorted(timeline.steps)
             for at, *rest in _known_from(timeline.steps[currency], marks, repeats=True)]
    paid = min((row for row in steps if row[1] > 0), key=lambda row: row[0][1], default=None)
    if paid is None or paid[2] == marks[0][1]:
        first = [(None, paid and paid[0][1], marks[0][1], None)]
    else:
        first = [(None, None, marks[0][1], paid[2]), (None, paid[0][1], paid[2], None)]
    return steps, _known_from(timeline.attribute_steps, marks, repeats=False), first


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
