"""`revledger verify`: tamper evidence and projection integrity, in one line."""

from __future__ import annotations

import sys

import click

from commands.output import working


@click.command()
@click.pass_obj
def verify(db: str) -> None:
    """Recompute the hash chain over every stored event and check that the projection
    equals a fresh fold of the events. Exit 0 if both hold; else exit 1 naming the first
    bad position and event."""
    from services.verify import verify_ledger

    with working("verifying the chain and the projection"):
        result = verify_ledger(db)
    chain = result.chain
    if chain.problem is not None:
        click.echo(f"revledger: verify FAILED at position {chain.position} "
                   f"(event {chain.event_id or '-'}): {chain.problem}; "
                   f"{chain.events} events before it verified", err=True)
        sys.exit(1)
    if result.differing_customer is not None:
        click.echo(f"revledger: verify FAILED: the projection of customer "
                   f"{result.differing_customer} differs from a fresh fold of its events "
                   "(run `revledger replay`)", err=True)
        sys.exit(1)
    head = chain.head
    where = f"head {head.position} {head.chain_sha256}" if head else "empty ledger"
    click.echo(f"verified: {chain.events} events chained ({where}); projection of "
               f"{result.customers} customers equals a fresh fold")
