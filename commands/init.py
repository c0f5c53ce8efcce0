"""`revledger init`: create a ledger and fix its reporting currency."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--currency", default="USD", show_default=True,
    help="The reporting currency (ISO 4217), fixed for the ledger's life.",
)
@click.pass_obj
def init(db: str, currency: str) -> None:
    """Create the ledger's tables and fix its reporting currency (default USD)."""
    from services.ledger import init_ledger  # imported here: other commands start faster

    fixed = init_ledger(db, currency.upper())
    click.echo(f"ledger ready at {db} (reporting currency {fixed})")
