"""The machinery of ingest: the checking process, the writers, the pipeline and its turns.

Faults go through public seams, not patches: the check and the spool a checking process
is given.
"""

from __future__ import annotations

import os
from concurrent.futures import BrokenExecutor

import pytest

from ledger.feed import CHECKER_NICE, checked_batches, numbered_lines
from ledger.workers import Spool
from tests.feeds import jsonl, voided
from tests.test_ingest import FEED

# -- the checking process -----------------------------------------------------------------


def niceness(batch: list) -> list:
    """A check that answers with the niceness of the process it runs in (by name: it is
    sent to the checking process)."""
    return [os.nice(0)]


class DyingHalfway(Spool):
    """Killed (out of memory, say) halfway through handing a batch's results over."""

    def put(self, value: object) -> str:
        path = super().put(value)
        with open(path, "r+b") as half:
            half.truncate(os.path.getsize(path) // 2)
        os._exit(9)


def test_lines_checked_in_a_worker_process_come_back_as_checked_in_process():
    lines = list(numbered_lines(
        (jsonl(*FEED) + b"not json\n\n" + jsonl(voided("e5", "e1"))).splitlines()
    ))
    serial = list(checked_batches(lines, 2, parallel=False))
    parallel = list(checked_batches(lines, 2, parallel=True))
    assert parallel == serial
    assert [read for read, _ in serial] == [2, 2, 2, 1]
    for batches in (serial, parallel):  # a plain tuple would compare equal: types too
        assert [type(r).__name__ for _, results in batches for r in results] == [
            "Checked", "Checked", "Checked", "Checked", "Rejected", "Checked"
        ]


def test_lines_are_checked_in_a_process_of_lower_priority():
    """Deciding and writing are ingest's critical path: the checking process, which runs
    ahead of them, takes what they leave of the cores."""
    lines = list(numbered_lines(jsonl(*FEED).splitlines()))
    nice = [r for _, results in checked_batches(lines, 1, parallel=True, check=niceness)
            for r in results]
    assert nice[0] == os.nice(0)  # the first batch, checked here while the worker starts
    assert set(nice[1:]) == {min(os.nice(0) + CHECKER_NICE, 19)}


def test_a_checking_process_that_dies_handing_results_over_ends_the_feed_not_hangs():
    """Killed (out of memory, say) halfway through handing a batch's results over: the
    reader must not wait for the rest forever."""
    lines = list(numbered_lines(jsonl(*FEED).splitlines()))
    with pytest.raises(BrokenExecutor):
        list(checked_batches(lines, 1, parallel=True, spool=DyingHalfway))
