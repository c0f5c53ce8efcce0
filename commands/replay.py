"""`revledger replay`: rebuild every projection from zero."""

from __future__ import annotations

import sys

import click

from commands.output import emit_outcome, format_option


@click.command()
@format_option
@click.pass_obj
def replay(db: str, fmt: str) -> None:
    """Rebuild the MRR projection from the events, from zero, in one transaction."""
    from rich.progress import Progress

    from services.projections import rebuild_projections  # imported here: faster start

    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("replay", total=None)
        result = rebuild_projections(
            db, on_progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    emit_outcome(fmt, f"replayed {result.events} events of {result.customers} customers in "
                      f"{result.seconds:.2f} s ({result.events_per_second:,.0f} events/s)",
                 {"events": result.events, "customers": result.customers,
                  "seconds": round(result.seconds, 3)}, to_stderr=True)
