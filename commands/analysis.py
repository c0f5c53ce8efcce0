"""`revledger cohorts` and `revledger report`: what analysts show people."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from commands.charts import MIN_CUSTOMERS
from commands.options import known_at_option, parser, when_option
from commands.output import caption, emit_csv, emit_json, emit_table, format_option, working
from commands.report_lines import report_figures, report_lines
from commands.restate import emit_since, from_option, since
from projections.periods import GRAINS, parse_segment


@click.command()
@when_option("--start", "The first cohort, the period containing:", grain="month")
@when_option("--end", "The last period (cohort and age), containing:", grain="month")
@click.option("--grain", type=click.Choice(GRAINS), default="month", show_default=True,
              help="Cohort and age period.")
@click.option("--metric", type=click.Choice(["nrr", "grr", "logos"]), default="nrr",
              show_default=True, help="Net, gross (capped per customer) or logo retention.")
@click.option("--segment", multiple=True, metavar="KEY=VALUE",
              callback=parser(lambda pairs: parse_segment(tuple(pairs))),
              help="Only customers with this attribute at the end of their cohort period.")
@known_at_option
@format_option
@click.pass_obj
def cohorts(db: str, start: date, end: date, grain: str, metric: str,
            segment: dict[str, str], known_at: str | None, fmt: str) -> None:
    """The vintage triangle: rows are cohorts by first paid period, columns are ages in
    periods, cells the cohort's retention from the end of its period to that age."""
    if end < start:
        raise click.BadParameter("the end month is before the start month", param_hint="--end")
    from services.analysis import cohorts_report

    with working("computing the triangle"):
        report = cohorts_report(db, start, end, grain, metric, segment, known_at)
    if fmt == "json":
        emit_json(report)
        return
    width = max((len(c["ages"]) for c in report["cohorts"]), default=0)
    if fmt == "csv":
        rows = [{"cohort": c["cohort"], "customers": c["customers"],
                 "starting_mrr": c["starting_mrr"],
                 "starting_mrr_exact": c["starting_mrr_exact"],
                 **{f"age_{k}": v for k, v in enumerate(c["ages"])},
                 **{f"age_{k}_exact": v for k, v in enumerate(c["ages_exact"])}}
                for c in report["cohorts"]]
        emit_csv(["cohort", "customers", "starting_mrr", "starting_mrr_exact",
                  *(f"age_{k}" for k in range(width)),
                  *(f"age_{k}_exact" for k in range(width))], rows)
        return
    import shutil

    from commands.cohort_table import cohort_lines

    title = (f"{metric.upper()} by {grain} cohort (% of the cohort's starting "
             + ("customers" if metric == "logos" else "MRR") + "; start = starting MRR)")
    width = shutil.get_terminal_size((100, 24)).columns
    for line in cohort_lines(report, width, title, caption(report["manifest"])):
        click.echo(line)


@click.command()
@when_option("--start", "Start:")
@when_option("--end", "End:")
@known_at_option
@from_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]),
              default="table", show_default=True,
              help="table for people, json or csv for tools, html for a file to share.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="html: the file to write (one self-contained file).")
@click.pass_obj
def report(db: str, start: date, end: date, known_at: str | None, known_from: str | None,
           fmt: str, out: Path | None) -> None:
    """A one-screen summary for people: MRR at both ends, NRR and GRR with the band the
    NRR falls in and the starting MRR, expansion, contraction and churn behind them, the
    monthly movements of the months after START's up to END's, logo churn, and warnings
    (such as expansion masking churn). `--format html --out FILE` writes the report with
    its charts and manifest as one self-contained HTML file."""
    if end < start:
        raise click.BadParameter("the end is before the start", param_hint="--end")
    if (fmt == "html") != (out is not None):
        raise click.UsageError("--out FILE goes with --format html, and html needs it")
    if known_from is not None and fmt not in ("json", "table"):
        raise click.UsageError("--from needs --format json or table; for CSV, run "
                               "`revledger restate nrr`")
    if fmt == "html":
        from commands.files import written
        from commands.html_report import html_report
        from services.analysis import report_with_charts

        with working("computing the report and drawing its charts"):
            page = html_report(report_with_charts(db, start, end, known_at), MIN_CUSTOMERS)
            with written(out) as partial:
                partial.write_text(page, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
        return
    from services.analysis import summary_report

    with working("computing the report"):
        r = summary_report(db, start, end, known_at)
        changed = since(db, {"start": start, "end": end}, known_from, known_at, fmt)
    if changed is not None:
        r["since"] = changed
    if fmt == "json":
        emit_json(r)
        return
    if fmt == "csv":
        emit_csv(["figure", "value"], report_figures(r))
    else:
        emit_table(["figure", "value"], report_lines(r),
                   title=f"Revenue retention {start} -> {end}", caption=caption(r["manifest"]))
        emit_since(changed)
