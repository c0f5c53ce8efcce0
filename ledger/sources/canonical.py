"""The canonical source: records already in the ledger's own format (docs/events.md), from
a JSON Lines file or posted to `POST /v1/events`.

Nothing to translate: lines pass through as they are, and ingest validates each one, so a
bad line is rejected with the reason ingest gives, wherever it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import orjson

from ledger.feed import Rejected, numbered_lines
from ledger.sources.base import Delivery, Ignored, Line, Lookup, RefusedDelivery, SourceBase
from ledger.sources.periods import looks_like_csv
from ledger.text import printable


class CanonicalSource(SourceBase):
    """Canonical JSON Lines. Its deliveries are not signed: the HTTP API's bearer token
    authenticates them (`POST /v1/events`, its own route); `revledger ingest` reads its
    files."""

    name = "canonical"

    def parse(
        self, data: Iterable[bytes], lookup: Lookup | None = None
    ) -> Iterator[Line | Rejected | Ignored]:
        """Every line, numbered from 1, without its line ending (blank ones too: ingest
        skips them, and the numbers stay those of the file). A file whose first line is a
        CSV header is refused as a whole, before anything is recorded, pointing at `import
        csv` (every line would be rejected as invalid JSON)."""
        lines = numbered_lines(data)
        first = next(lines, None)
        if first is None:
            return
        if looks_like_csv(first[1]):
            header = printable(first[1].decode(errors="replace").strip()[:120])
            raise RefusedDelivery(f"this looks like CSV (header: {header}), not canonical "
                                  "JSON Lines; import subscription periods with `revledger "
                                  "import csv FILE` (see --help for its columns)")
        yield first
        yield from lines

    def delivery(
        self, body: bytes, headers: Mapping[str, str], lookup: Lookup | None = None
    ) -> Delivery:
        """One JSON object, however laid out (e.g. indented), or JSON Lines. A body that
        is neither is split into lines anyway, for ingest to reject each with its reason."""
        try:
            lines = [body] if isinstance(orjson.loads(body), dict) else body.splitlines()
        except orjson.JSONDecodeError:
            lines = body.splitlines()
        return Delivery(lines)
