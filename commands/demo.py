"""`revledger demo`: ingest the bundled sample ledger and show what it holds."""

from __future__ import annotations

import click

from commands.output import err
from ledger.settings import DEMO_DB, redact
from services.present import percent


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Ingest the bundled sample feed (dbt mrr-playbook seed) and summarise the ledger.

    Uses ./revledger-demo.db unless --db is given. Run it twice: the second run stores
    nothing new, every event is a duplicate delivery.
    """
    from services.demo import run_demo  # imported here: other commands start faster

    db = ctx.obj
    if ctx.parent and ctx.parent.get_parameter_source("db").name == "DEFAULT":
        db = DEMO_DB
    report = run_demo(db)
    s = report.ingest.summary
    shown = redact(db)  # never a password
    err(f"ingested the sample feed into {shown}: accepted {s.accepted}, "
        f"duplicates {s.duplicates}, rejected {s.rejected}")
    r = report.retention
    click.echo(f"ledger {shown}: {report.events} events stored (dbt mrr-playbook sample)")
    click.echo(f"MRR at the end of {report.mrr_start['date']}: {report.mrr_start['mrr']} USD "
               f"({report.mrr_start['customers']} customers)")
    click.echo(f"MRR at the end of {report.mrr_end['date']}: {report.mrr_end['mrr']} USD "
               f"({report.mrr_end['customers']} customers)")
    click.echo(f"NRR {r['start']} -> {r['end']}: {percent(r['nrr_exact'])} "
               f"(exact {r['nrr_exact']}), GRR {percent(r['grr_exact'])}, "
               f"over {r['customers']} customers")
    click.echo(f"  starting {r['starting_mrr']}  expansion +{r['expansion']}  "
               f"contraction -{r['contraction']}  churn -{r['churn']}  ending {r['ending_mrr']}")
