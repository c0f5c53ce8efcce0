"""`revledger verify`: tamper evidence and projection integrity, in one line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from commands.output import emit_outcome, format_option, working

if TYPE_CHECKING:
    from services.verify import Verification


@click.command()
@format_option
@click.pass_obj
def verify(db: str, fmt: str) -> None:
    """Recompute the hash chain over every stored event and check that the projection
    (and the query columns stored from it) equals a fresh fold of the events. Exit 0 if
    all hold; else exit 1 naming the first bad position and event."""
    from services.verify import verify_ledger

    with working("verifying the chain and the projection"):
        result = verify_ledger(db)
    chain, head = result.chain, result.chain.head
    fields = {
        "ok": result.ok,
        "events": chain.events,
        "head_position": head.position if head else None,
        "head_chain_sha256": head.chain_sha256 if head else None,
        "customers": result.customers,
        "bad_position": chain.position,
        "bad_event_id": chain.event_id,
        "problem": chain.problem or _projection_problem(result),
    }
    if chain.problem is not None:
        line = (f"revledger: verify FAILED at position {chain.position} "
                f"(event {chain.event_id or '-'}): {chain.problem}; "
                f"{chain.events} events before it verified")
    elif not result.ok:
        line = f"revledger: verify FAILED: {fields['problem']}"
    else:
        where = f"head {head.position} {head.chain_sha256}" if head else "empty ledger"
        line = (f"verified: {chain.events} events chained ({where}); projection of "
                f"{result.customers} customers equals a fresh fold")
    emit_outcome(fmt, line, fields, to_stderr=not result.ok)
    if not result.ok:
        sys.exit(1)


def _projection_problem(result: Verification) -> str | None:
    if result.differing_customer is not None:
        return (f"the projection of customer {result.differing_customer} differs from a "
                "fresh fold of its events (run `revledger replay`)")
    if result.columns_differ:
        return ("the stored query columns differ from the projection's rows "
                "(run `revledger replay`)")
    return None
