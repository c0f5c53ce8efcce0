"""Warnings beside an answer: what a person must know to read the figures right (the
ledger read holds no events, a segment no customer ever had, a `--known-at` before the
first recording), never a silent empty answer.

A service states a notice with `notice()`; the entry point decides where notices go (the
command line prints each on stderr as `revledger: warning: ...`) by running the service
inside `notices_to()`. Outside it, notices go nowhere: the answer itself is unchanged and
the exit status stays 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ledger.text import printable

_sink: ContextVar[Callable[[str], None] | None] = ContextVar("notice_sink", default=None)


def notice(message: str) -> None:
    """One line a reader of this answer must not miss."""
    sink = _sink.get()
    if sink is not None:
        sink(printable(message))  # it may quote attribute values or options as given


@contextmanager
def notices_to(sink: Callable[[str], None]) -> Iterator[None]:
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
