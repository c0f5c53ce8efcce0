"""Charts: each kind in each format from `--out`'s extension, from the same exact series
as the metrics (both stores); the drawing's promises (axis titles with the currency, the
footer tying the picture to the ledger, band labels apart, a few customers not setting the
NRR scale) checked on the figure itself."""

from __future__ import annotations

import struct
from datetime import date
from fractions import Fraction
from itertools import pairwise

import pytest
from click.testing import CliRunner

from bench.generate import generate
from cli import main
from commands.chart_render import LABEL_GAP, band_labels, figure_for, spread
from services.analysis import chart_series
from services.ingest import ingest_feed
from services.metrics import mrr_report, nrr_report
from tests.feeds import jsonl, started

MANIFEST = {"known_at": "2025-01-02T03:04:05.000000Z",
            "ledger_head": {"position": 4321, "chain_sha256": "ab" * 32}}
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-"}


@pytest.fixture
def ledger(db_url) -> str:
    ingest_feed(db_url, jsonl(*generate(customers=150, seed=30)).splitlines())
    return db_url


def draw(db: str, *args: str):
    return CliRunner().invoke(main, ["--db", db, "chart", *args])


@pytest.mark.parametrize("kind", ["nrr", "movements", "mrr", "cohorts"])
def test_each_chart_is_a_png_of_sensible_size(ledger, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    result = draw(ledger, kind, "--start", "2023-06", "--end", "2024-12", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == MAGIC["png"]
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == ((1200, 900) if kind == "cohorts" else (1200, 660))
    assert 20_000 < len(data) < 1_000_000


@pytest.mark.parametrize("fmt", ["svg", "pdf", "PNG"])
def test_the_format_is_the_extension(sqlite_url, tmp_path, fmt):
    ingest_feed(sqlite_url, jsonl(*generate(customers=20, seed=3)).splitlines())
    out = tmp_path / f"chart.{fmt}"
    result = draw(sqlite_url, "mrr", "--start", "2023-01", "--end", "2023-12", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(MAGIC[fmt.lower()])
    assert not list(tmp_path.glob(".*partial"))


def test_svg_is_the_same_file_for_the_same_ledger(sqlite_url, tmp_path):
    ingest_feed(sqlite_url, jsonl(*generate(customers=20, seed=3)).splitlines())
    for name in ("a.svg", "b.svg"):
        draw(sqlite_url, "nrr", "--start", "2023-01", "--end", "2024-06", "--known-at",
             "2030-01-01", "--out", str(tmp_path / name))
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_an_unknown_extension_is_a_usage_error(sqlite_url, tmp_path):
    result = draw(sqlite_url, "mrr", "--start", "2023-01", "--end", "2023-02", "--out",
                  str(tmp_path / "chart.jpg"))
    assert result.exit_code == 2 and "*.png, *.svg or *.pdf" in result.stderr


def test_an_unwritable_path_is_one_line(sqlite_url, tmp_path):
    out = tmp_path / "missing" / "chart.png"
    ingest_feed(sqlite_url, jsonl(started("e1", "s1", "c1", "2023-01-10T00:00:00Z")).splitlines())
    result = draw(sqlite_url, "mrr", "--start", "2023-01", "--end", "2023-02", "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr == f"revledger: cannot write {out}: No such file or directory\n"
    folder = tmp_path / "folder.png"
    folder.mkdir()
    result = draw(sqlite_url, "mrr", "--start", "2023-01", "--end", "2023-02", "--out",
                  str(folder))
    assert result.exit_code == 2 and "is a directory" in result.stderr
    assert "Traceback" not in result.output
    under_a_file = tmp_path / "file.txt" / "chart.png"  # a parent that is a file
    under_a_file.parent.write_text("")
    result = draw(sqlite_url, "mrr", "--start", "2023-01", "--end", "2023-02", "--out",
                  str(under_a_file))
    assert result.exit_code == 1
    assert result.stderr == f"revledger: cannot write {under_a_file}: Not a directory\n"


def test_chart_series_are_the_metrics(ledger):
    mrr = chart_series(ledger, "mrr", date(2024, 1, 1), date(2024, 3, 1))["points"]
    assert [str(p["mrr"] / 100) for p in mrr] == [
        mrr_report(ledger, day)["mrr_exact"]
        for day in (date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31))]
    nrr = chart_series(ledger, "nrr", date(2024, 6, 1), date(2024, 6, 1))["points"][0]
    figures = nrr_report(ledger, date(2023, 6, 30), date(2024, 6, 30))
    assert (str(nrr["nrr"]), nrr["customers"]) == (figures["nrr_exact"], figures["customers"])


def series(kind: str, points: list[dict], currency: str = "EUR") -> dict:
    return {"kind": kind, "points": points, "currency": currency, "manifest": MANIFEST}


def texts(figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text"))]


@pytest.mark.parametrize("kind", ["mrr", "movements"])
def test_money_axes_name_the_currency_and_the_footer_the_ledger(kind):
    zero = {k: Fraction(0) for k in ("new", "expansion", "contraction", "churn",
                                     "reactivation")}
    figure = figure_for(series(kind, [{"month": "2024-01", "mrr": Fraction(100), **zero}]))
    assert figure.axes[0].get_ylabel().endswith("(EUR)")
    assert ("revledger · ledger head 4321 (chain sha256 abababababababab), as known at "
            "2025-01-02T03:04:05.000000Z") in texts(figure)


def point(month: str, nrr: str, customers: int) -> dict:
    return {"month": month, "nrr": Fraction(nrr), "grr": min(Fraction(nrr), Fraction(1)),
            "customers": customers}


def test_a_point_over_few_customers_does_not_set_the_scale():
    """One customer tripling (300%) in a month of 3 customers: drawn hollow at the top
    edge, while the scale stays where the well-populated points are."""
    points = [point("2024-01", "1.05", 40), point("2024-02", "3", 3),
              point("2024-03", "0.97", 41)]
    figure = figure_for(series("nrr", points), min_customers=10)
    low, high = figure.axes[0].get_ylim()
    assert high < 1.5 and low > 0.8
    assert any("fewer than 10 customers" in t for t in texts(figure))
    wide = figure_for(series("nrr", points), min_customers=1)
    assert wide.axes[0].get_ylim()[1] > 3


@pytest.mark.parametrize(("low", "high"), [(0.5, 1.6), (0.98, 1.02), (1.19, 1.31), (0.0, 9.0)])
def test_band_labels_never_overlap(low, high):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5.5), dpi=120)
    axes = figure.add_subplot()
    axes.set_ylim(low, high)
    labels = band_labels(axes, low, high)
    figure.tight_layout()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert labels
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (low, high)


def test_spread_keeps_order_and_gap():
    assert spread([0.1, 0.11, 0.12], 0.05) == pytest.approx([0.1, 0.15, 0.2])
    assert spread([0.99, 1.0], 0.05) == pytest.approx([0.95, 1.0])
    placed = spread([0.5] * 5, LABEL_GAP)
    assert all(b - a >= LABEL_GAP - 1e-9 for a, b in pairwise(placed))


def test_at_most_24_month_labels():
    points = [{"month": f"{2020 + m // 12}-{m % 12 + 1:02d}", "mrr": Fraction(m)}
              for m in range(49)]
    labels = [t.get_text() for t in figure_for(series("mrr", points)).axes[0].get_xticklabels()]
    assert labels == [p["month"] for p in points[::3]] and len(labels) <= 24
