"""Options shared by the query commands; a malformed value is a usage error (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from projections.periods import (
    PeriodError,
    end_day,
    end_month,
    parse_known_at,
    parse_period,
    parse_segment,
    start_day,
    start_month,
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


# Every --start, --end and --at takes a date or a period, read by one parser
# (projections.periods): for --start a period means its start, for --end and --at its end.
_PARSE = {("start", "day"): start_day, ("end", "day"): end_day,
          ("start", "month"): start_month, ("end", "month"): end_month}


def when_option(name: str, help: str, grain: str = "day", required: bool = True) -> Any:
    """`--start`, `--end` or `--at`: a date (`2024-03-15`) or a period (`2024-03`,
    `2024-Q1`, `2024`). Day commands get the date at whose end to read; monthly commands
    (`grain="month"`) get the first day of the month."""
    side = "start" if name == "--start" else "end"
    if grain == "day":
        help += f" YYYY-MM-DD (that day's end, UTC), or YYYY-MM, YYYY-Qn, YYYY (its {side})."
    else:
        help += f" YYYY-MM, or the {'first' if side == 'start' else 'last'} month of " \
                "YYYY-Qn, YYYY or YYYY-MM-DD's month."
    return click.option(name, required=required, callback=parser(_PARSE[side, grain]),
                        metavar="WHEN", help=help)


def nrr_options(function: Any) -> Any:
    """`--start`, `--end`, `--cohort`, `--segment`: what an NRR is of."""
    for option in reversed((
        when_option("--start", "Start:"),
        when_option("--end", "End:"),
        click.option("--cohort", callback=parser(parse_period), metavar="PERIOD",
                     help="Only customers first paying in 2023, 2023-Q2 or 2023-07."),
        click.option("--segment", multiple=True, metavar="KEY=VALUE",
                     callback=parser(lambda pairs: parse_segment(tuple(pairs))),
                     help="Only customers with this attribute at the start; repeatable."),
    )):
        function = option(function)
    return function


def retention_options(function: Any) -> Any:
    """`nrr_options` and `--known-at`: an NRR as known at some instant."""
    return nrr_options(known_at_option(function))
