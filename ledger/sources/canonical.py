"""The canonical source: records already in the ledger's own format (docs/events.md), from
a JSON Lines file or posted to `POST /v1/events`.

Nothing to translate: lines pass through as they are, and ingest validates each one, so a
bad line is rejected with the reason ingest gives, wherever it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import orjson

from ledger.feed import MAX_LINE, Rejected, numbered_lines
from ledger.sources.base import Delivery, Ignored, Line, Lookup


class CanonicalSource:
    """Canonical JSON Lines. Its deliveries are not signed: the HTTP API's bearer token
    authenticates them."""

    name = "canonical"
    namespace = None
    max_line = MAX_LINE
    translates = False

    def parse(
        self, data: Iterable[bytes], lookup: Lookup | None = None
    ) -> Iterator[Line | Rejected | Ignored]:
        """Every line, numbered from 1, without its line ending (blank ones too: ingest
        skips them, and the numbers stay those of the file)."""
        return numbered_lines(data)

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
