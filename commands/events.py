"""`revledger events`: what the ledger recorded, in recorded order."""

from __future__ import annotations

import click

from commands.options import known_at_option
from commands.output import emit_rows, format_option
from ledger.kinds import EVENT_TYPES

COLUMNS = (
    "position", "recorded_at", "effective_at", "type", "event_id", "customer_id",
    "subscription_id", "payload", "chain_sha256",
)
TABLE_COLUMNS = COLUMNS[:-2]


@click.command()
@click.option("--customer", help="Only this customer's events (voids of them included).")
@click.option("--subscription", help="Only this subscription's events.")
@click.option("--type", "type_", type=click.Choice(EVENT_TYPES), help="Only this event type.")
@known_at_option
@format_option
@click.pass_obj
def events(
    db: str, customer: str | None, subscription: str | None, type_: str | None,
    known_at: str | None, fmt: str,
) -> None:
    """List stored events in recorded order, with position and recorded time.

    The table leaves out the payload and chain hash; `--format json` or `csv` carry them.
    """
    # Imported here, not at the top: `revledger --help` and other commands start faster.
    from services.events import iter_events

    rows = iter_events(db, customer=customer, subscription=subscription, type=type_,
                       known_at=known_at)  # streamed: a whole ledger never sits in memory
    emit_rows(fmt, COLUMNS if fmt != "table" else TABLE_COLUMNS, rows)
