"""Charts render to valid PNGs of a sensible size, from the same exact series as the
metrics (both stores)."""

from __future__ import annotations

import struct
from datetime import date

import pytest
from click.testing import CliRunner

from bench.generate import generate
from cli import main
from services.analysis import chart_series
from services.ingest import ingest_feed
from services.metrics import mrr_report, nrr_report
from tests.feeds import jsonl


@pytest.fixture
def ledger(db_url) -> str:
    ingest_feed(db_url, jsonl(*generate(customers=150, seed=30)).splitlines())
    return db_url


@pytest.mark.parametrize("kind", ["nrr", "movements", "mrr"])
def test_each_chart_is_a_png_of_sensible_size(ledger, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    result = CliRunner().invoke(main, ["--db", ledger, "chart", kind, "--start", "2023-06",
                                       "--end", "2024-12", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (1200, 660)
    assert 20_000 < len(data) < 1_000_000


def test_chart_series_are_the_metrics(ledger):
    mrr = chart_series(ledger, "mrr", date(2024, 1, 1), date(2024, 3, 1))["points"]
    assert [str(p["mrr"] / 100) for p in mrr] == [
        mrr_report(ledger, day)["mrr_exact"]
        for day in (date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31))]
    nrr = chart_series(ledger, "nrr", date(2024, 6, 1), date(2024, 6, 1))["points"][0]
    assert str(nrr["nrr"]) == nrr_report(ledger, date(2023, 6, 30), date(2024, 6, 30))[
        "nrr_exact"]
