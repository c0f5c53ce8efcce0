"""The dbt mrr-playbook seed (subscription periods), bundled as the demo's sample ledger
and a realistic test fixture, read through the CSV source's `mrr-playbook` preset: the
demo and `revledger import csv --preset mrr-playbook` record the same events, with the
same ids, so importing the seed into the demo ledger adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from ledger.sources.periods import PRESETS, PeriodsSource

SAMPLE = files("ledger") / "samples" / "mrr_playbook_subscription_periods.csv"


def playbook_events(path: Path | Any = SAMPLE) -> Iterator[dict[str, Any]]:
    """Canonical events for every period of the seed, in file order: a
    `subscription.started` at the start date and a `subscription.cancelled` at the end
    date (exclusive: the first month no longer paid), both at 00:00Z."""
    with path.open("rb") as handle:
        for item in PeriodsSource(PRESETS["mrr-playbook"]).parse(handle):
            assert isinstance(item, tuple), item  # the bundled seed has no bad row
            yield orjson.loads(item[1])
