"""The reference: the contract's fold and metrics, written as plainly as the contract reads.

This is the check, not the product. `verify` and the tests hold the fast paths (the
incremental fold, the bitemporal versions, the column engine) to it, so it shares none of
their code: it reads the events as delivered (its own timestamp and amount parsing), keeps
every event in a list, sorts the visible ones by effective time and folds them one by one,
and answers every question by folding again. Slow on purpose; nothing here is cached,
scaled or vectorised. It imports nothing from the project: its modules import the standard
library and each other only (tests/test_reference.py holds every module to that).

One concept per module: `events` (the events as delivered, which count, whose they are),
`months` (instants of days and months), `fold` (one customer's MRR and attributes over
effective time), `rates` (the rate in force), `metrics` (every figure of the contract).

Instants are fixed-width UTC text (`2024-01-15T08:00:00.000000Z`), which sorts in time
order. "At the end of day D" is written as "effective at or before D's last microsecond",
which needs no day after 9999-12-31.
"""

from __future__ import annotations

from projections.reference.events import (
    Event,
    amount,
    customer_of,
    stored_event,
    utc,
    visible,
)
from projections.reference.fold import PER_MONTH, History, fold, mrr, paying, versions
from projections.reference.metrics import Reference, paid_at_a_month_end_before
from projections.reference.months import (
    in_period,
    last_instant,
    microsecond_before,
    month_last_day,
    month_range,
    month_start,
    next_month,
)
from projections.reference.rates import NoRate, direct, rate

__all__ = [
    "PER_MONTH", "Event", "History", "NoRate", "Reference", "amount", "customer_of",
    "direct", "fold", "in_period", "last_instant", "microsecond_before", "month_last_day",
    "month_range", "month_start", "mrr", "next_month", "paid_at_a_month_end_before",
    "paying", "rate", "stored_event", "utc", "versions", "visible",
]
