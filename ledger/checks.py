"""Checking a line: JSON decoding, the contract's validation, the content hash, and the
limits of the channel that delivered it. Pure (no I/O, nothing of the store), so the
forked checker (`ledger.checker`) runs it in a second process for a long feed.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.events import InvalidEvent, content_hash, decode_line, parse_event
from ledger.feed import CANONICAL, Channel, Checked, Rejected
from ledger.kinds import PRICED, SUBSCRIPTION_TYPES, UNOWNED, VOID


def check_line(number: int, raw: bytes, channel: Channel = CANONICAL) -> Checked | Rejected:
    """One line from `channel`, checked against the contract and the channel's limits."""
    limit = channel.max_line
    if limit is not None and len(raw) > limit:
        return Rejected(number, "-", f"line longer than {limit >> 10} KiB ({len(raw)} "
                        "bytes): a canonical event is a few hundred bytes", raw)
    try:
        payload = decode_line(raw, translated=channel.translated)
        event = parse_event(payload)
    except InvalidEvent as bad:
        return Rejected(number, bad.event_id, bad.reason, raw)
    if (refused := channel.refuses(event["event_id"])) is not None:
        return Rejected(number, event["event_id"], refused, raw)
    type_ = event["type"]
    return Checked(  # only the type's own fields place it (see ledger.kinds)
        number,
        raw,
        content_hash(payload),
        event["event_id"],
        type_,
        event.get("effective_at"),
        None if type_ in UNOWNED else event["customer_id"],
        event["subscription_id"] if type_ in SUBSCRIPTION_TYPES else None,
        event["voids"] if type_ == VOID else None,
        event.get("currency") if type_ in PRICED else None,
    )


def check_batch(
    batch: list[tuple[int, bytes]], channel: Channel = CANONICAL
) -> list[Checked | Rejected]:
    """Checked records and rejections of a batch's non-blank lines, in order."""
    return [check_line(number, raw, channel) for number, raw in batch if raw.strip()]


Check = Callable[[list[tuple[int, bytes]]], list[Checked | Rejected]]
