"""`report --format html`: one self-contained file, rendered in headless Chromium (Debian's
package; scripts/test.sh installs it): the screenshot is not blank and every figure in the
rendered DOM equals the JSON report (both stores)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from bench.generate import generate
from cli import main
from services.ingest import ingest_feed
from tests.feeds import jsonl

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARGS = ["report", "--start", "2023-12-31", "--end", "2024-12-31"]


def chromium() -> str:
    path = os.environ.get("REVLEDGER_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed: run the suite with scripts/test.sh")
    return path


def browse(page, profile, *how: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *how,
                           page.as_uri()], capture_output=True, timeout=180, check=True)


class Figures(HTMLParser):
    """(name, text) of every element with `data-figure`, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[list[str]] = []
        self.open = False

    def handle_starttag(self, tag, attrs):
        name = dict(attrs).get("data-figure")
        if name is not None:
            self.found.append([name, ""])
        self.open = name is not None

    def handle_endtag(self, tag):
        self.open = False

    def handle_data(self, data):
        if self.open:
            self.found[-1][1] += data


def expected(report: dict) -> list[tuple[str, str]]:
    """The JSON report's figures by the names the page gives them."""
    head = report["manifest"]["ledger_head"]
    out = [(k, "" if v is None else str(v)) for k, v in report.items()
           if not k.endswith("_exact") and k not in ("movements", "warnings", "manifest")]
    out += [(f"movements_{k}", v) for k, v in report["movements"].items()
            if not k.endswith("_exact")]
    out += [("warning", w) for w in report["warnings"]]
    tree = report["manifest"]["merkle_tree"]
    return [*out, ("known_at", report["manifest"]["known_at"]),
            ("ledger_position", str(head["position"])),
            ("ledger_chain_sha256", head["chain_sha256"]),
            ("tree_size", str(tree["size"])), ("tree_root", tree["root"])]


def test_the_html_report_renders_with_the_json_reports_figures(db_url, tmp_path):
    import matplotlib.image

    ingest_feed(db_url, jsonl(*generate(customers=120, seed=11)).splitlines())
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["--db", db_url, *ARGS, "--format", "html",
                                       "--out", str(page)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["--db", db_url, *ARGS, "--format", "json"])
    report = json.loads(result.stdout)
    text = page.read_text()
    # self-contained: nothing to fetch (the SVG namespace names are names, not fetches)
    assert not re.findall(r'(?:src|href)\s*=\s*"(?!#|data:)', text)
    assert "default-src 'none'" in text and text.count("<svg") == 3

    dom = browse(page, tmp_path / "profile-dom", "--dump-dom").stdout.decode()
    parser = Figures()
    parser.feed(dom)
    assert [tuple(f) for f in parser.found] == expected(report)
    assert report["manifest"]["ledger_head"]["chain_sha256"] in dom

    shot = tmp_path / "shot.png"
    browse(page, tmp_path / "profile-shot", "--window-size=1200,1600", f"--screenshot={shot}")
    pixels = matplotlib.image.imread(shot)[..., :3]
    inked = (pixels.min(axis=2) < 0.9).mean()  # not white
    assert inked > 0.05, inked
    assert len({tuple(p) for p in pixels.reshape(-1, 3)[::97].round(2).tolist()}) > 20


def test_html_needs_out_and_out_needs_html(sqlite_url, tmp_path):
    for args in (["--format", "html"], ["--out", str(tmp_path / "r.html")]):
        result = CliRunner().invoke(main, ["--db", sqlite_url, *ARGS, *args])
        assert result.exit_code == 2 and "--out FILE goes with --format html" in result.stderr
