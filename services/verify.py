"""`verify`: the hash chain recomputed over every stored event, and the projection (every
version of its rows, and the query columns stored from them) held to the reference fold,
which shares no code with the path that wrote them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ledger.chain import ChainReport, check
from projections.check import Comparison, compare
from projections.projection import MRRProjection
from services.ledger import open_ledger


@dataclass(frozen=True)
class Verification:
    chain: ChainReport
    projection: Comparison = field(default_factory=Comparison)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.chain.problem is None and self.projection.difference is None


def verify_ledger(url: str) -> Verification:
    """Stops at the first break of the chain: a projection of tampered events proves
    nothing."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        chain = check(app.ledger_recorder.iter_chain())
        if chain.problem is not None:
            return Verification(chain, seconds=time.perf_counter() - started)
        projection = MRRProjection(app)
        projection.catch_up()
        return Verification(chain, compare(projection), time.perf_counter() - started)
