"""Batches: work is done a batch at a time (one transaction, one query, one array)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(
    items: Iterable[T],
    size: int,
    weight: Callable[[T], int] | None = None,
    limit: int = 0,
) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter), lazily; with `weight`,
    a list also ends once its items weigh `limit` or more."""
    iterator = iter(items)
    if weight is None:
        while batch := list(islice(iterator, size)):
            yield batch
        return
    batch: list[T] = []
    total = 0
    for item in iterator:
        batch.append(item)
        total += weight(item)
        if len(batch) >= size or total >= limit:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch
