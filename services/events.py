"""List what the ledger recorded, in recorded order: the auditor's raw view."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from projections.facts import decode_fact
from services.ledger import known_head, open_ledger


def iter_events(
    url: str,
    *,
    customer: str | None = None,
    subscription: str | None = None,
    type: str | None = None,
    known_at: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Stored canonical events, optionally filtered, oldest position first; with
    `known_at`, only those recorded by then. Streamed a page at a time from one read
    transaction, so listing a whole ledger takes the memory of a page: the ledger stays
    open until the iterator is exhausted or closed."""
    filters = {
        column: value
        for column, value in (
            ("customer_id", customer),
            ("subscription_id", subscription),
            ("type", type),
        )
        if value is not None
    }
    with open_ledger(url) as app:
        upto = None if known_at is None else known_head(app, known_at)[1]
        for row in app.ledger_recorder.iter_events_by(filters, upto):
            fact = decode_fact(row.position, row.state)  # as the projections read it
            assert fact is not None  # the index holds canonical events only
            yield {
                "position": row.position,
                "recorded_at": fact.recorded_at,
                "effective_at": fact.effective_at,
                "type": fact.type,
                "event_id": fact.event_id,
                "customer_id": fact.customer_id,  # a type's own fields: a void has none
                "subscription_id": fact.subscription_id,
                "payload": fact.payload,
                "chain_sha256": row.chain_sha256,
            }


def list_events(url: str, **filters: Any) -> list[dict[str, Any]]:
    """`iter_events`, all at once (for a few events: a customer's, a test's)."""
    return list(iter_events(url, **filters))
