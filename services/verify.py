"""`verify`: the hash chain recomputed over every stored event, the projection held to a
fresh fold of the events, and the stored query columns to the projection's rows."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.chain import ChainReport, check
from projections.engine import MRRIndex
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
        customers, differing = projection.first_difference()
        return Verification(chain, customers, differing, not _columns_hold(projection))


def _columns_hold(projection: MRRProjection) -> bool:
    """Whether the stored query columns, if any, are those of the view's current rows."""
    position = projection.position
    stored = projection.view.load_snapshot(position)
    return stored is None or stored == projection.view.read(MRRIndex.from_rows,
                                                            position).to_bytes()
