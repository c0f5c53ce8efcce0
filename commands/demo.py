"""`revledger demo`: ingest the bundled sample ledger and show what it holds."""

from __future__ import annotations

import click

from commands.output import err
from services.demo import run_demo

DEMO_DB = "sqlite:///revledger-demo.db"


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Ingest the bundled sample feed (dbt mrr-playbook seed) and summarise the ledger.

    Uses ./revledger-demo.db unless --db is given. Run it twice: the second run stores
    nothing new, every event is a duplicate delivery.
    """
    db = ctx.obj
    if ctx.parent and ctx.parent.get_parameter_source("db").name == "DEFAULT":
        db = DEMO_DB
    report = run_demo(db)
    s = report.ingest.summary
    err(f"ingested the sample feed into {db}: accepted {s.accepted}, "
        f"duplicates {s.duplicates}, rejected {s.rejected}")
    click.echo(f"ledger {db}: {report.events} events stored")
