"""List what the ledger recorded, in recorded order: the auditor's raw view."""

from __future__ import annotations

from typing import Any

from ledger.instants import format_instant
from services.ledger import known_head, open_ledger


def list_events(
    url: str,
    *,
    customer: str | None = None,
    subscription: str | None = None,
    type: str | None = None,
    known_at: str | None = None,
) -> list[dict[str, Any]]:
    """Stored canonical events, optionally filtered, oldest position first; with
    `known_at`, only those recorded by then."""
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
        decode = app.mapper.transcoder.decode
        upto = None if known_at is None else known_head(app, known_at)[1]
        rows = []
        for row in app.ledger_recorder.select_events_by(filters, upto):
            state = decode(row.state)
            payload = state["payload"]
            rows.append(
                {
                    "position": row.position,
                    "recorded_at": format_instant(state["timestamp"]),
                    "effective_at": state["effective_at"],
                    "type": state["type"],
                    "event_id": state["event_id"],
                    "customer_id": payload.get("customer_id"),
                    "subscription_id": payload.get("subscription_id"),
                    "payload": payload,
                    "chain_sha256": row.chain_sha256,
                }
            )
        return rows
