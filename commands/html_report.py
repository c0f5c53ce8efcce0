"""`report --format html`: one self-contained file a finance team can mail around.

Everything is inside: the styles, the charts as inline SVG (their text drawn as paths,
so no font is fetched), the manifest. A Content-Security-Policy forbids every fetch, so
the file shows the same offline as online. Each figure sits in an element with
`data-figure="NAME"`, the name it has in `report --format csv`, for tools to read.
"""

from __future__ import annotations

import io
from html import escape
from typing import Any

from commands.report_lines import report_figures, report_lines

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .8em;text-align:left;
border-bottom:1px solid #eee}th{white-space:nowrap}
td.v{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:.5em 1em;margin:.4em 0}
.manifest{font-size:.85em;color:#444}.manifest code{word-break:break-all}
figure{margin:1em 0}figure svg{width:100%;height:auto}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def html_report(pack: dict[str, Any], min_customers: int) -> str:
    r = pack["report"]
    title = f"Revenue retention {r['start']} → {r['end']}"
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _manifest(r["manifest"], pack["currency"]),
        *(f'<p class="warn">Warning: {escape(w)}</p>' for w in r["warnings"]),
        "<h2>Summary</h2>",
        _table([row for row in report_lines(r) if row["figure"] != "WARNING"]),
        "<h2>Charts</h2>",
        *(_figure(series, min_customers) for series in pack["charts"]),
        "<h2>Every figure</h2>",
        "<p>Amounts in the reporting currency, ratios as decimals (1 = 100%); the exact "
        "fractions are in <code>revledger report --format json</code>.</p>",
        _figures(report_figures(r)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _manifest(manifest: dict[str, Any], currency: str) -> str:
    head = manifest["ledger_head"]
    rows = [("reporting currency", currency), ("as known at", manifest["known_at"] or "-"),
            ("ledger head position", "-" if head is None else str(head["position"])),
            ("ledger head chain sha256", "-" if head is None else head["chain_sha256"])]
    items = "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(v)}</code></td></tr>"
                    for k, v in rows)
    return (f'<section class="manifest"><h2>Manifest</h2><table>{items}</table>'
            "<p>Re-run with <code>--known-at</code> set to the instant above and the same "
            "figures come back; <code>revledger verify</code> checks the chain up to the "
            "head.</p></section>")


def _table(rows: list[dict[str, Any]]) -> str:
    body = "".join(f'<tr><th>{escape(str(row["figure"]).strip())}</th>'
                   f'<td class="v">{escape(str(row["value"]))}</td></tr>' for row in rows)
    return f"<table>{body}</table>"


def _figures(rows: list[dict[str, Any]]) -> str:
    body = "".join(f'<tr><th>{escape(name)}</th><td class="v" data-figure="{escape(name)}">'
                   f"{escape('' if value is None else str(value))}</td></tr>"
                   for name, value in ((row["figure"], row["value"]) for row in rows))
    return f"<table>{body}</table>"


def _figure(series: dict[str, Any], min_customers: int) -> str:
    import matplotlib

    from commands.chart_render import figure_for

    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "revledger", "svg.fonttype": "path"}):
        figure_for(series, min_customers).savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    return f'<figure data-chart="{series["kind"]}">{svg[svg.index("<svg"):]}</figure>'
