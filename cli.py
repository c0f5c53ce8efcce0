"""revledger's command line: a thin click layer over `services`.

Commands live in `commands/`, one module per concern; this module wires them into one
group, resolves `--db` and turns the errors a user can act on into one line on stderr.
"""

from __future__ import annotations

import importlib
import sys

import click

from commands.output import printable
from ledger.settings import DEFAULT_DB, redact
from services.errors import LedgerError
from services.notices import notices_to

# Each command, by the module that defines it: imported only when that command runs (or
# its help is asked for), so `revledger nrr` does not load the ingest path, Stripe's
# mapping or the charts before it answers.
COMMANDS = {
    "init": "commands.init:init", "ingest": "commands.ingest:ingest",
    "import": "commands.ingest:import_", "events": "commands.events:events",
    "history": "commands.audit:history", "explain": "commands.audit:explain",
    "mrr": "commands.metrics:mrr", "metrics": "commands.metrics:metrics",
    "nrr": "commands.metrics:nrr", "movements": "commands.metrics:movements",
    "cohorts": "commands.analysis:cohorts", "report": "commands.analysis:report",
    "chart": "commands.charts:chart", "export": "commands.export:export",
    "replay": "commands.replay:replay", "verify": "commands.verify:verify",
    "serve": "commands.serve:serve", "demo": "commands.demo:demo",
    "quarantine": "commands.quarantine:quarantine",
    "settings": "commands.quarantine:settings",
    "stripe-settings": "commands.quarantine:stripe_settings",
    "keygen": "commands.checkpoints:keygen", "checkpoint": "commands.checkpoints:checkpoint",
    "prove": "commands.checkpoints:prove", "audit": "commands.checkpoints:audit",
    "restate": "commands.restate:restate",
}


class _Group(click.Group):
    """Exit 1 with one line, never a traceback, for errors about data or the store; each
    command loaded from `COMMANDS` when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            module, attribute = COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def every_command(self) -> dict[str, click.Command]:
        """All the commands, loaded (for the CLI reference and its tests)."""
        return {name: command for name in self.list_commands(click.Context(self))
                if (command := self.get_command(click.Context(self), name)) is not None}

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



if __name__ == "__main__":
    main()
