"""SQLite on a full disk and on a read-only file system: one clear line, nothing
half-written, and the same command succeeds once the fault is gone. (Needs root to mount a
small tmpfs; skipped otherwise.)"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.generate import generate
from tests.feeds import jsonl
from tests.test_crashes import ledger_of, revledger

ROOT = Path(__file__).resolve().parent.parent

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 1 MiB file system."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    stderr = result.stderr.decode().strip()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert any(f in stderr.splitlines()[-1] for f in fragments), stderr


@needs_root
def test_a_full_disk_is_one_line_and_a_rerun_after_freeing_space_completes(small_disk,
                                                                          tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=600, seed=2)))
    url = f"sqlite:///{small_disk / 'ledger.db'}"
    one_line(revledger(url, "ingest", str(feed)), "disk is full", "disk I/O error")
    verified = revledger(url, "verify")  # what was committed before the disk filled is whole
    assert verified.returncode == 0, verified.stderr.decode()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert revledger(url, "ingest", str(feed)).returncode == 0
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    assert revledger(clean, "ingest", str(feed)).returncode == 0
    assert ledger_of(url) == ledger_of(clean)


@needs_root
def test_a_read_only_database_is_one_line_and_changes_nothing(small_disk, tmp_path):
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    url = f"sqlite:///{small_disk / 'ledger.db'}"
    feed = tmp_path / "feed.jsonl"
    events = list(generate(customers=50, seed=3))
    feed.write_bytes(jsonl(*events[: len(events) // 2]))
    assert revledger(url, "ingest", str(feed)).returncode == 0
    before = ledger_of(url)
    feed.write_bytes(jsonl(*events))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        one_line(revledger(url, "ingest", str(feed)), "readonly database",
                 "unable to open database file", "read-only file system")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert ledger_of(url) == before
