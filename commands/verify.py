"""`revledger verify`: tamper evidence and projection integrity, in one line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

import click

from commands.output import emit_outcome, format_option, working

if TYPE_CHECKING:
    from services.tree_check import TreeReport
    from services.verify import Verification


@click.command()
@click.option("--checkpoint", type=click.File("r"), default=None,
              help="A signed checkpoint: prove the ledger still holds the tree it signed.")
@click.option("--key", type=click.File("r"), default=None,
              help="The verifier key (.pub) that signed the checkpoint.")
@format_option
@click.pass_obj
def verify(db: str, checkpoint: TextIO | None, key: TextIO | None, fmt: str) -> None:
    """Recompute the hash chain over every stored event; recompute the Merkle tree's root
    from the events and hold it to the stored tree; hold every stored event again to the
    contract, its index row and the recording rules (ids unique, voids' targets, a
    subscription's customer, the reporting currency, streams' versions); and hold the
    projection to a reference fold of the events that shares no code with the
    projection's: every version of every customer's rows (what --known-at reads) and the
    query columns stored from the current rows. With --checkpoint and --key, prove the
    first events are exactly those the checkpoint signed (a cut tail or a rewrite below it
    is caught; events after it are reported unproven). Exit 0 if all hold; else exit 1
    naming the first bad position and event, what the tree check found, or the first
    customer and position whose rows differ. What verify cannot detect is listed in
    docs/audit.md."""
    from services.verify import verify_ledger

    if checkpoint is not None and key is None:
        raise click.UsageError("--checkpoint needs --key (the verifier key that signed it)")
    with working("verifying the chain and the projection"):
        result = verify_ledger(db, checkpoint=checkpoint.read() if checkpoint else None,
                               key=key.read().strip() if key else None)
    tree = result.tree
    chain, head, broken = result.chain, result.chain.head, result.ledger_break
    compared, difference = result.projection, result.projection.difference
    fields = {
        "ok": result.ok,
        "events": chain.events,
        "events_rechecked": result.events.events,
        "voids_rechecked": result.events.voids,
        "head_position": head.position if head else None,
        "head_chain_sha256": head.chain_sha256 if head else None,
        "customers": compared.customers,
        "rows_compared": compared.rows,
        "versions_compared": compared.versions,
        "query_columns_compared": compared.columns,
        "seconds": round(result.seconds, 3),
        "bad_position": broken.position if broken else difference and difference.position,
        "bad_event_id": broken and broken.event_id,
        "bad_customer": difference and difference.customer,
        "problem": broken.problem if broken else tree.problem or _projection_problem(result),
        "tree_size": tree.leaves,
        "tree_root": tree.root,
        "checkpoint_size": tree.checkpoint_size,
        "unproven_after_checkpoint": tree.unproven if tree.checkpoint_size is not None
        else None,
    }
    if chain.problem is not None:
        line = (f"revledger: verify FAILED at position {chain.position} "
                f"(event {chain.event_id or '-'}): {chain.problem}; "
                f"{chain.events} events before it verified")
    elif broken is not None:
        where = "" if broken.position is None else f" at position {broken.position}"
        line = (f"revledger: verify FAILED{where} (event {broken.event_id or '-'}): "
                f"{broken.problem}; the chain of {chain.events} events holds")
    elif not result.ok:
        line = f"revledger: verify FAILED: {fields['problem']}"
    else:
        where = f"head {head.position} {head.chain_sha256}" if head else "empty ledger"
        columns = " and the query columns" if compared.columns else ""
        line = (f"verified: {chain.events} events chained ({where}); Merkle tree of "
                f"{tree.leaves} leaves, root {tree.root}{_proven(tree)}; "
                f"{result.events.events} events valid under the contract and the recording "
                f"rules, each indexed as its bytes say; the projection of "
                f"{compared.customers} customers ({compared.rows} rows, {compared.versions} "
                f"versions){columns} equals the reference fold, in {result.seconds:.2f} s")
    emit_outcome(fmt, line, fields, to_stderr=not result.ok)
    if not result.ok:
        sys.exit(1)


def _proven(tree: TreeReport) -> str:
    if tree.checkpoint_size is None:
        return ""
    return (f"; the checkpoint's {tree.checkpoint_size} events are proven, "
            f"{tree.unproven} after it unproven")


def _projection_problem(result: Verification) -> str | None:
    difference = result.projection.difference
    if difference is None:
        return None
    where = "" if difference.position is None else f" at position {difference.position}"
    return (f"the projection of customer {difference.customer} differs from the reference "
            f"fold of its events{where} ({difference.what}): run `revledger replay`")
