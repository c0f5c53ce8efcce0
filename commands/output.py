"""Rendering results for people (tables) and tools (JSON, CSV); the only place that prints."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
import orjson

from services.errors import printable  # commands escape what they echo with it too

FORMATS = click.Choice(["table", "json", "csv"])


def format_option(function: Any) -> Any:
    return click.option(
        "--format", "fmt", type=FORMATS, default="table", show_default=True,
        help="table for people, json or csv for tools.",
    )(function)


def emit_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


def emit_json_rows(rows: Iterable[Any]) -> None:
    """What `emit_json(list(rows))` writes, byte for byte, a row at a time: a long listing
    never sits in memory whole. (Each row's indented dump, indented one level more: JSON
    strings hold no raw newline, so every line break is the layout's.)"""
    out = sys.stdout.buffer
    empty = True
    for row in rows:
        out.write(b"[\n  " if empty else b",\n  ")
        out.write(orjson.dumps(row, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n  "))
        empty = False
    out.write(b"[]\n" if empty else b"\n]\n")
    out.flush()


def emit_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """A header and a row per dict, written as they come."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])


def flat_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest as flat fields, for a CSV row or table."""
    head, tree = manifest["ledger_head"] or {}, manifest.get("merkle_tree") or {}
    flat = {"known_at": manifest["known_at"], "ledger_position": head.get("position"),
            "ledger_chain_sha256": head.get("chain_sha256"), "tree_size": tree.get("size"),
            "tree_root": tree.get("root")}
    if settings := _settings_text(manifest):
        flat["source_settings"] = settings
    return flat


def _settings_text(manifest: dict[str, Any]) -> str:
    """How the ledger reads its sources, in a line: `stripe: repeating coupons ignore, ...`."""
    return "; ".join(
        f"{source}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())
        for source, values in manifest.get("source_settings", {}).items())


def caption(manifest: dict[str, Any]) -> str:
    head = manifest["ledger_head"]
    if head is None:
        return "empty ledger"
    settings = _settings_text(manifest)
    tree = manifest.get("merkle_tree")
    leaves = f"; Merkle tree {tree['size']} ({tree['root'][:12]})" if tree else ""
    return (f"as known at {manifest['known_at']}; ledger head {head['position']} "
            f"({head['chain_sha256'][:12]}){leaves}{'; ' + settings if settings else ''}")


def emit_table(
    columns: Sequence[str],
    rows: Sequence[dict[str, Any]],
    title: str | None = None,
    caption: str | None = None,
) -> None:
    from rich.console import Console  # only tables need rich: JSON and CSV start faster
    from rich.table import Table

    table = Table(title=title, caption=caption, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(printable(_cell(row.get(c))) for c in columns))  # one line a row
    Console(soft_wrap=False).print(table)


def emit_rows(fmt: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Rows as JSON or CSV, streamed; or as a table, which needs them all for its widths
    (so only the table's columns of each are kept)."""
    if fmt == "json":
        emit_json_rows(rows)
    elif fmt == "csv":
        emit_csv(columns, rows)
    else:
        emit_table(columns, [{c: row.get(c) for c in columns} for row in rows])


def err(message: str) -> None:
    click.echo(message, err=True)


def working(label: str) -> Any:
    """A spinner with elapsed time on a terminal, while a long command replays or checks;
    nothing when stderr is not a terminal."""
    from contextlib import nullcontext

    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn(label), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    progress.add_task(label, total=None)
    return progress


def emit_outcome(fmt: str, line: str, fields: dict[str, Any], *, to_stderr: bool = False) -> None:
    """A command's outcome: one line for people (on stderr for commands whose stdout is
    data), or the same facts as a JSON object or a one-row CSV for tools."""
    if fmt == "json":
        emit_json(fields)
    elif fmt == "csv":
        emit_csv(list(fields), [fields])
    else:
        click.echo(line, err=to_stderr)
