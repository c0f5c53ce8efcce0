"""The CLI reference (docs/cli.md), generated from the commands' own --help.

    python -m commands.reference > docs/cli.md

A test regenerates it and fails when the file differs, so the docs follow the code.
"""

from __future__ import annotations

import click

HEADER = """# CLI reference

Generated from `revledger --help` by `python -m commands.reference > docs/cli.md`; a test
keeps it in sync. Exit status: 0 success, 1 a data or ledger error (a rejected line, an
unreachable database), 2 a usage error (malformed option).
"""


def _help(args: list[str]) -> str:
    """`revledger ARGS --help` as a user sees it, at a fixed width."""
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, [*args, "--help"], prog_name="revledger",
                                env={"COLUMNS": "90"})
    return result.stdout.rstrip("\n")


def render() -> str:
    from cli import main

    parts = [HEADER, "## revledger\n", "```\n" + _help([]) + "\n```\n"]

    def document(path: list[str], command: click.Command) -> None:
        """A command's help, then each subcommand's of a group (`export mrr`)."""
        parts.append(f"## revledger {' '.join(path)}\n")
        parts.append("```\n" + _help(path) + "\n```\n")
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            document([*path, name], sub)

    for name, command in sorted(main.every_command().items()):
        document([name], command)
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(render(), nl=False)
