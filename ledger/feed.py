"""A feed's lines and what checking one yields: the lines numbered, the channel that
delivered them (its id namespace, its line limit), a checked record or a rejection.

Plain data, importing nothing but `ledger.text`: the recording rules (`ledger.rules`)
read these records, and loading them loads neither the contract's validation
(`ledger.checks`) nor the process that checks a long feed (`ledger.checker`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ledger.text import printable

# Beyond this a canonical line is refused: it bounds what one stored event costs every
# later reader (a projection page holds thousands of events). A source that translates
# (Stripe) bounds what it receives instead, by its own limit (its `Channel`).
MAX_LINE = 128 << 10


@dataclass(frozen=True)
class Channel:
    """The channel that delivered a line: which event ids it may write and how long a
    line it may send. Ids are namespaced by channel, so a canonical client (a feed, the
    HTTP token) cannot take an id a billing source's webhook will deliver later."""

    name: str
    max_line: int | None = MAX_LINE  # bytes; None when the source bounds its own input
    namespace: str | None = None  # the prefix all its ids carry (e.g. "stripe:")
    reserved: tuple[str, ...] = ()  # prefixes of other channels' ids: refused here
    translated: bool = False  # lines written by revledger from a document it checked

    def refuses(self, event_id: str) -> str | None:
        """Why `event_id` is not this channel's to write, or None."""
        if self.namespace is not None and not event_id.startswith(self.namespace):
            return f"event_id: {self.name} ids start with {self.namespace!r}"
        if event_id.startswith(self.reserved):
            prefix = next(p for p in self.reserved if event_id.startswith(p))
            return (f"event_id: ids starting with {prefix!r} are reserved for events "
                    f"delivered by that billing source; choose another id")
        return None


CANONICAL = Channel("canonical")  # no namespace known: see ledger.sources.channel


@dataclass(frozen=True)
class Rejected:
    line: int
    event_id: str
    reason: str
    raw: bytes

    def __str__(self) -> str:
        """The one line that reports it: input echoed here is escaped (a newline in an id
        cannot start a line of its own)."""
        return f"line {self.line}: {printable(self.event_id)}: {printable(self.reason)}"


class Checked(NamedTuple):
    """A line that passed validation: what deciding and recording it needs."""

    line: int
    raw: bytes
    sha: str
    event_id: str
    type: str
    effective_at: str | None  # normalised fixed-width UTC text
    customer_id: str | None
    subscription_id: str | None
    voids: str | None
    currency: str | None


def numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Feed lines numbered from 1, without their line endings."""
    for number, line in enumerate(stream, start=1):
        yield number, line.rstrip(b"\r\n")
