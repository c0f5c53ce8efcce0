"""The CLI reference in docs/ is the commands' own help: regenerate it when help changes."""

from pathlib import Path

from commands.reference import render


def test_cli_reference_matches_the_commands_help():
    path = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    assert path.read_text() == render(), (
        "docs/cli.md is stale: run `python -m commands.reference > docs/cli.md`"
    )
