"""revledger's command line: a thin click layer over `services`.

Commands live in `commands/`, one module per concern; this module wires them into one
group, resolves `--db` and turns the errors a user can act on into one line on stderr.
"""

from __future__ import annotations

import sys

import click

from commands.analysis import cohorts, report
from commands.audit import explain, history
from commands.charts import chart
from commands.checkpoints import audit, checkpoint, keygen, prove
from commands.demo import demo
from commands.events import events
from commands.export import export
from commands.ingest import import_, ingest
from commands.init import init
from commands.metrics import metrics, movements, mrr, nrr
from commands.output import printable
from commands.quarantine import quarantine, stripe_settings
from commands.replay import replay
from commands.restate import restate
from commands.serve import serve
from commands.verify import verify
from ledger.settings import DEFAULT_DB, redact
from services.errors import LedgerError
from services.notices import notices_to


class _Group(click.Group):
    """Exit 1 with one line, never a traceback, for errors about data or the store."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            with notices_to(lambda message: click.echo(f"revledger: warning: {message}",
                                                       err=True)):
                return super().invoke(ctx)
        except LedgerError as exc:
            click.echo(f"revledger: {printable(redact(str(exc)))}", err=True)
            sys.exit(1)
        except BrokenPipeError:
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("revledger: interrupted (every batch recorded so far is kept; "
                       "re-running the same ingest is safe)", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db", envvar="REVLEDGER_DB", default=DEFAULT_DB, show_default=True, show_envvar=True,
    help="The ledger: sqlite:///path/file.db or postgresql://user:pass@host:port/db.",
)
@click.version_option(package_name="revledger")
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """revledger: an event-sourced revenue ledger (MRR, NRR, GRR), exact and replayable."""
    ctx.obj = db


for command in (init, ingest, import_, events, history, mrr, metrics, nrr, movements, cohorts,
                report, chart, export, explain, replay, verify, serve, demo, quarantine,
                stripe_settings, keygen, checkpoint, prove, audit, restate):
    main.add_command(command)

if __name__ == "__main__":
    main()
