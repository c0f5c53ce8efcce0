"""Adapter: the dbt mrr-playbook seed (subscription periods) as canonical events.

Each row is one subscription period, `end_date` exclusive, `monthly_amount` per month:
a `subscription.started` at the start date and a `subscription.cancelled` at the end
date, both at 00:00Z. The seed is the demo's sample ledger and a realistic test fixture.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from ledger.kinds import CANCELLED, STARTED

SAMPLE = files("ledger") / "samples" / "mrr_playbook_subscription_periods.csv"


def playbook_events(path: Path | Any = SAMPLE) -> Iterator[dict[str, Any]]:
    """Canonical events for every period of the seed, in file order."""
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            ids = {"customer_id": row["customer_id"], "subscription_id": row["subscription_id"]}
            yield {
                "event_id": f"playbook-{row['subscription_id']}-start",
                "type": STARTED,
                "effective_at": f"{row['start_date']}T00:00:00Z",
                **ids,
                "plan": "playbook",
                "amount": f"{row['monthly_amount']}.00",
                "currency": "USD",
                "interval": "month",
            }
            if row["end_date"]:
                yield {
                    "event_id": f"playbook-{row['subscription_id']}-end",
                    "type": CANCELLED,
                    "effective_at": f"{row['end_date']}T00:00:00Z",
                    **ids,
                }
