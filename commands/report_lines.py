"""`report` for people (labelled lines, the NRR's bridge spelled out) and for
spreadsheets (one figure per row, every value a plain number or a plain string)."""

from __future__ import annotations

from typing import Any

from commands.output import flat_manifest
from services.present import percent

_MOVES = ("new", "expansion", "reactivation", "contraction", "churn")


def report_figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure of the JSON report as (figure, value) rows a spreadsheet reads:
    amounts and ratios as decimal numbers (the exact fractions are in `--format json`:
    `2/3` in a cell becomes a date), counts as integers, the band and each warning as
    text. Empty for a ratio with no customers to divide by."""
    skip = {"manifest", "movements", "warnings"}
    rows = [{"figure": k, "value": v} for k, v in r.items()
            if k not in skip and not k.endswith("_exact") and not isinstance(v, dict | list)]
    rows += [{"figure": f"movements_{k}", "value": v} for k, v in r["movements"].items()
             if not k.endswith("_exact")]
    rows += [{"figure": "warning", "value": w} for w in r["warnings"]]
    rows += [{"figure": k, "value": v} for k, v in flat_manifest(r["manifest"]).items()]
    return rows


def report_lines(r: dict[str, Any]) -> list[dict[str, str]]:
    """The one-screen report: MRR at both ends, then how the NRR comes about (the
    customers paying at the start, what they added and lost), then the movements."""
    ratio = {k: percent(r[f"{k}_exact"]) for k in ("nrr", "grr", "logo_churn")}
    return [
        {"figure": f"MRR at {r['start']}",
         "value": f"{r['mrr_at_start']} ({r['customers_at_start']} customers)"},
        {"figure": f"MRR at {r['end']}",
         "value": f"{r['mrr_at_end']} ({r['customers_at_end']} customers)"},
        {"figure": "ARR at start / end", "value": f"{r['arr_at_start']} / {r['arr_at_end']}"},
        {"figure": "ARPA at start / end",
         "value": f"{r['arpa_at_start'] or 'n/a'} / {r['arpa_at_end'] or 'n/a'}"},
        {"figure": "NRR", "value": f"{ratio['nrr']}  {r['nrr_band'] or ''}".rstrip()},
        {"figure": "GRR", "value": ratio["grr"]},
        {"figure": f"  starting MRR ({r['customers']} customers)", "value": r["starting_mrr"]},
        {"figure": "  + expansion", "value": r["expansion"]},
        {"figure": "  - contraction", "value": r["contraction"]},
        {"figure": f"  - churn ({r['churned_customers']} left)", "value": r["churn"]},
        {"figure": "  = ending MRR (the same customers)", "value": r["ending_mrr"]},
        {"figure": "logo churn", "value": f"{ratio['logo_churn']} ({r['churned_customers']} of "
                                          f"{r['customers']} customers)"},
        {"figure": "quick ratio", "value": r["quick_ratio"] or "n/a (nothing lost)"},
        {"figure": "expansion from quantity", "value": r["expansion_from_quantity"]},
        {"figure": "expansion from price or plan", "value": r["expansion_from_price_or_plan"]},
        *({"figure": f"movements: {kind}", "value": r["movements"][kind]} for kind in _MOVES),
        *({"figure": "WARNING", "value": w} for w in r["warnings"]),
    ]
