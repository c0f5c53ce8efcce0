"""Options shared by the query commands; a malformed value is a usage error (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from projections.periods import (
    PeriodError,
    parse_date,
    parse_known_at,
    parse_period,
    parse_segment,
)

T = TypeVar("T")


def parser(parse: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, Any], T | None]:
    """A click callback: a malformed value is a usage error (exit 2), not a traceback."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except PeriodError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def known_at_option(function: Any) -> Any:
    return click.option(
        "--known-at", callback=parser(parse_known_at), metavar="INSTANT",
        help="Answer as the ledger knew things then (RFC 3339, or a date = its end).",
    )(function)


def date_option(name: str, help: str) -> Any:
    return click.option(name, required=True, callback=parser(parse_date), metavar="YYYY-MM-DD",
                        help=help)


def retention_options(function: Any) -> Any:
    """`--start`, `--end`, `--cohort`, `--segment`, `--known-at`: what an NRR is of."""
    for option in reversed((
        date_option("--start", "Start of the period (its end, UTC)."),
        date_option("--end", "End of the period (its end, UTC)."),
        click.option("--cohort", callback=parser(parse_period), metavar="PERIOD",
                     help="Only customers first paying in 2023, 2023-Q2 or 2023-07."),
        click.option("--segment", multiple=True, metavar="KEY=VALUE",
                     callback=parser(lambda pairs: parse_segment(tuple(pairs))),
                     help="Only customers with this attribute at the start; repeatable."),
        known_at_option,
    )):
        function = option(function)
    return function
