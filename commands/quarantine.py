"""`revledger quarantine list|retry`: what a billing source delivered that the ledger holds
instead of recording (and why), and recording it once it can; `revledger settings` (and
`stripe-settings`): how the ledger reads a source's records."""

from __future__ import annotations

import sys

import click

from commands.output import emit_json, emit_rows, err, format_option, printable
from services.errors import LedgerError

SOURCE = click.option("--source", default=None, help="Only this source's (e.g. stripe).")


@click.group()
def quarantine() -> None:
    """Records held because they cannot be recorded yet: nothing delivered is lost."""


@quarantine.command("list")
@SOURCE
@click.option("--raw", is_flag=True, help="Show each record verbatim too.")
@format_option
@click.pass_obj
def list_(db: str, source: str | None, raw: bool, fmt: str) -> None:
    """List held records, oldest first, with why each is held. Exit status 0 even when
    some are held: they are kept, and `quarantine retry` records them once it can."""
    from services.quarantine import held_records

    rows = held_records(db, source)
    columns = ("id", "source", "event_id", "held_at", "reason", *(("raw",) if raw else ()))
    emit_rows(fmt, columns if fmt == "table" else (*columns[:5], "raw"), rows)


@quarantine.command()
@SOURCE
@format_option
@click.pass_obj
def retry(db: str, source: str | None, fmt: str) -> None:
    """Map every held record again and record those that map now (after an upgrade, a
    backfill of the discounts they need, ...). Exit status 1 if some stay held."""
    from services.quarantine import retry as retry_all

    result = retry_all(db, source)
    if fmt == "json":
        emit_json(result)
    else:
        for row in result["held"]:
            err(f"{printable(row['event_id'])}: still held: {printable(row['reason'])}")
        err(f"recorded {len(result['recorded'])}, still held {len(result['held'])}")
    if result["held"]:
        sys.exit(1)


@click.command("stripe-settings")
@click.option("--repeating-coupons", type=click.Choice(["ignore", "count"]),
              help="Do repeating coupons reduce MRR while they run? Stripe: ignore.")
@click.option("--scheduled-cancellation", type=click.Choice(["when_scheduled", "when_ended"]),
              help="When does a cancellation at period end stop counting? Stripe: "
                   "when_scheduled.")
@format_option
@click.pass_obj
def stripe_settings(db: str, repeating_coupons: str | None,
                    scheduled_cancellation: str | None, fmt: str) -> None:
    """Show (or, before the first Stripe event, choose) how this ledger reads Stripe.

    Recorded in the ledger and shown in every answer's manifest: a figure means what
    they say. Stripe's defaults apply unless chosen before the first import or webhook.
    """
    values = {k: v for k, v in (("repeating_coupons", repeating_coupons),
                                ("scheduled_cancellation", scheduled_cancellation)) if v}
    _settings(db, "stripe", values, fmt)


@click.command("settings")
@click.argument("source")
@click.argument("choices", nargs=-1, metavar="[NAME=VALUE]...")
@format_option
@click.pass_obj
def settings(db: str, source: str, choices: tuple[str, ...], fmt: str) -> None:
    """Show (or, before SOURCE's first event, choose) how this ledger reads a billing
    source's records: `revledger settings stripe repeating_coupons=count`.

    Recorded in the ledger and shown in every answer's manifest: a figure means what
    they say. The source's defaults apply unless chosen before its first event.
    """
    values = {}
    for choice in choices:
        name, equals, value = choice.partition("=")
        if not (name and equals and value):
            raise LedgerError(f"{printable(choice)}: expected NAME=VALUE")
        values[name] = value
    _settings(db, source, values, fmt)


def _settings(db: str, source: str, values: dict[str, str], fmt: str) -> None:
    from services.quarantine import source_settings

    try:
        chosen = source_settings(db, source, values)
    except ValueError as exc:
        raise LedgerError(printable(str(exc))) from None
    if fmt == "json":
        emit_json(chosen)
    else:
        emit_rows(fmt, ("setting", "value"),
                  [{"setting": k, "value": v} for k, v in chosen.items()])
