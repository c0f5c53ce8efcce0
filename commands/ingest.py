"""`revledger ingest`: a canonical JSON Lines feed into the ledger; `revledger import`: a
billing source's file (one subcommand per source that has one, from the registry) or
subscription periods in CSV."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from commands.output import emit_outcome, err, format_option, printable
from services.sources import PRESETS, Importer, importers, layout_for

if TYPE_CHECKING:
    from services.ingest import Rejected


class _Counting:
    """Iterates a binary file's lines, counting bytes for a progress bar."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.bytes = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for line in self.stream:
            self.bytes += len(line)
            yield line


rejects_option = click.option(
    "--rejects", type=click.File("wb"), default=None,
    help="Write rejected records here, verbatim, for re-submission.",
)


@click.command()
@click.argument("feed", type=click.File("rb"))
@rejects_option
@format_option
@click.pass_obj
def ingest(db: str, feed: BinaryIO, rejects: BinaryIO | None, fmt: str) -> None:
    """Record FEED (canonical JSON Lines; - for stdin) in the ledger.

    Good lines are stored even when others are rejected; each rejected line is reported
    on stderr as `line N: EVENT_ID: reason`. Exit status 1 if any line was rejected.
    """
    _run("canonical", db, feed, rejects, fmt)


@click.group("import")
def import_() -> None:
    """Import events from another system's format."""


def _imports(importer: Importer) -> click.Command:
    """`revledger import COMMAND FILE [--rejects] [--format]`: one source's file, the
    help the source gives."""

    def function(db: str, file: BinaryIO, rejects: BinaryIO | None, fmt: str) -> None:
        _run(importer.source, db, file, rejects, fmt)

    command: Callable[..., None] = function
    for decorate in (click.pass_obj, format_option, rejects_option,
                     click.argument("file", type=click.File("rb"))):
        command = decorate(command)
    return import_.command(importer.command, help=importer.help)(command)


for _importer in importers():
    _imports(_importer)


def _run(source: str, db: str, feed: BinaryIO, rejects: BinaryIO | None, fmt: str) -> None:
    """Record a file from `source` (a name in ledger.sources), then print the summary."""
    # Imported here, not at the top: `revledger --help` and other commands start faster.
    from services.ingest import ingest_feed

    lines = _Counting(feed)

    def on_reject(reject: Rejected) -> None:
        err(str(reject))
        if rejects is not None:
            rejects.write(reject.raw + b"\n")

    def on_held(held: Rejected) -> None:
        err(f"line {held.line}: {printable(held.event_id)}: held: {printable(held.reason)}")

    with ExitStack() as stack:
        on_batch = _progress(stack, feed, lines)
        result = ingest_feed(db, lines, source=source, on_reject=on_reject, on_batch=on_batch,
                             on_held=on_held)
    s = result.summary
    ignored = f", ignored {result.ignored}" if result.ignored else ""
    if result.held or result.released:
        ignored += (f", held {result.held} (recorded from the quarantine: {result.released}; "
                    "see revledger quarantine list)")
    emit_outcome(
        fmt,
        f"accepted {s.accepted}, duplicates {s.duplicates}, rejected {s.rejected}{ignored} "
        f"in {result.seconds:.2f} s ({result.events_per_second:,.0f} events/s); "
        f"projection updated in {result.projection_seconds:.2f} s",
        {"accepted": s.accepted, "duplicates": s.duplicates, "rejected": s.rejected,
         "ignored": result.ignored, "held": result.held, "released": result.released,
         "lines": s.lines, "seconds": round(result.seconds, 3),
         "projection_seconds": round(result.projection_seconds, 3)},
        to_stderr=True,
    )
    if s.rejected:
        sys.exit(1)


def _progress(stack: ExitStack, feed: BinaryIO, lines: _Counting):  # type: ignore[no-untyped-def]
    """A progress bar on a terminal (by bytes of the feed), nothing otherwise."""
    if not sys.stderr.isatty():
        return lambda summary: None
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from services.ingest import IngestSummary
    try:
        size = os.fstat(feed.fileno()).st_size or None
    except (OSError, ValueError):
        size = None
    progress = stack.enter_context(
        Progress(
            TextColumn("ingest"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[events]} events"), transient=True,
        )
    )
    task = progress.add_task("ingest", total=size, events=0)
    seen = IngestSummary()

    def on_batch(summary: IngestSummary) -> None:
        seen.add(summary)
        progress.update(task, completed=lines.bytes, events=seen.lines)

    return on_batch


def _column(field: str, default: str) -> Any:
    return click.option(f"--{field}-column", field.replace("-", "_"), metavar="NAME",
                        default=None, help=f"Column of the {field.replace('-', ' ')} "
                                           f"(default {default}).")


@import_.command("csv")
@click.argument("file", type=click.File("rb"))
@click.option("--preset", type=click.Choice(sorted(PRESETS)),
              help="The layout of a known export: mrr-playbook (the dbt mrr-playbook seed: "
                   "end_date exclusive, monthly_amount).")
@_column("customer", "customer_id")
@_column("start", "start_date")
@_column("end", "end_date; empty = still running")
@_column("amount", "amount, per billing interval")
@_column("subscription", "subscription_id; without it each row is its own subscription")
@_column("plan", "plan")
@_column("currency", "currency")
@_column("interval", "interval: day, week, month or year")
@_column("interval-count", "interval_count")
@_column("quantity", "quantity")
@click.option("--attribute", "attributes", multiple=True, metavar="COLUMN",
              help="A column to keep as a customer attribute (for --segment); repeatable.")
@click.option("--end-inclusive", is_flag=True, default=None,
              help="The end is the last day paid (default: the first day not paid).")
@click.option("--default-plan", metavar="NAME", help="Plan of rows without one.")
@click.option("--default-currency", metavar="CODE",
              help="Currency of rows without one (the ledger's reporting currency).")
@click.option("--default-interval", type=click.Choice(["day", "week", "month", "year"]),
              help="Interval of rows without one (month).")
@click.option("--namespace", metavar="NAME",
              help="Prefix of the event ids (default csv): one per file you keep in sync.")
@click.option("--sync", is_flag=True,
              help="The file is the truth: void the events of rows no longer in it.")
@format_option
@click.pass_obj
def import_csv(db: str, file: BinaryIO, preset: str | None, sync: bool, fmt: str,
               attributes: tuple[str, ...], **columns: Any) -> None:
    """Record subscription periods from FILE (CSV, one row per period; - for stdin).

    A row: customer, start, end (empty = still running), amount per billing interval, and
    optionally subscription id, plan, currency, interval, interval count, quantity and
    attribute columns; dates are YYYY-MM-DD (00:00Z) or RFC 3339 timestamps. Event ids
    come from each row's content: importing a corrected file again records only what
    changed. A bad row is reported as `row N: reason` (the header is row 1) and nothing
    of it is stored; exit status 1 if any row was rejected.
    """
    from services.imports import import_periods

    if attributes:
        columns["attributes"] = attributes
    layout = layout_for(preset, **columns)
    result = import_periods(db, file, layout, sync=sync, file_name=file.name,
                            on_reject=lambda r: err(f"row {r.line}: {r.reason}"))
    s = result.ingest.summary
    fields = {"rows": result.rows, "accepted": s.accepted, "duplicates": s.duplicates,
              "rejected": s.rejected, "voided": result.voided, "stale": result.stale}
    emit_outcome(fmt, f"{result.rows} rows: accepted {s.accepted} events, duplicates "
                      f"{s.duplicates}, rejected {s.rejected}"
                      + (f", voided {result.voided} of rows no longer in the file"
                         if sync else ""),
                 fields, to_stderr=True)
    if result.stale:
        err(f"warning: {result.stale} events imported earlier under '{layout.namespace}:' "
            "come from rows no longer in this file and still count; run again with --sync "
            "to void them")
    if s.rejected:
        sys.exit(1)
