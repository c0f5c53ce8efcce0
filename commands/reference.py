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


def _help(command: click.Command, path: list[str]) -> str:
    with click.Context(command, info_name=" ".join(path), terminal_width=90) as ctx:
        return command.get_help(ctx)


def render() -> str:
    from cli import main

    parts = [HEADER, "## revledger\n", "```\n" + _help(main, ["revledger"]) + "\n```\n"]
    for name in sorted(main.commands):
        command = main.commands[name]
        parts.append(f"## revledger {name}\n")
        parts.append("```\n" + _help(command, ["revledger", name]) + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(render(), nl=False)
