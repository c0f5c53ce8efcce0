"""`revledger init`: create a ledger and fix its reporting currency."""

from __future__ import annotations

import click

from commands.output import emit_outcome, format_option
from ledger.settings import redact


@click.command()
@click.option(
    "--currency", default="USD", show_default=True,
    help="The reporting currency (ISO 4217), fixed for the ledger's life.",
)
@format_option
@click.pass_obj
def init(db: str, currency: str, fmt: str) -> None:
    """Create the ledger's tables and fix its reporting currency (default USD)."""
    from services.ledger import init_ledger  # imported here: other commands start faster

    fixed = init_ledger(db, currency.upper())
    shown = redact(db)  # never a password on a terminal or in a log
    emit_outcome(fmt, f"ledger ready at {shown} (reporting currency {fixed})",
                 {"db": shown, "currency": fixed})
