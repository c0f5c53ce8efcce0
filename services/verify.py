"""`verify`: the hash chain recomputed over every stored event, and the projection (its
rows and the query columns stored from them) held to a fresh fold of the events."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.chain import ChainReport, check
from projections.projection import MRRProjection
from services.ledger import open_ledger


@dataclass(frozen=True)
class Verification:
    chain: ChainReport
    customers: int = 0
    differing_customer: str | None = None
    columns_differ: bool = False  # queries would answer from other rows than the view's

    @property
    def ok(self) -> bool:
        return (self.chain.problem is None and self.differing_customer is None
                and not self.columns_differ)


def verify_ledger(url: str) -> Verification:
    """Stops at the first break of the chain: a projection of tampered events proves
    nothing."""
    with open_ledger(url) as app:
        chain = check(app.ledger_recorder.iter_chain())
        if chain.problem is not None:
            return Verification(chain)
        projection = MRRProjection(app)
        projection.catch_up()
        return Verification(chain, *projection.first_difference())
