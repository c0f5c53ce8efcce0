"""Text that came from outside (a file, a feed, a ledger's attribute values) made safe to
print in a one-line message."""

from __future__ import annotations


def printable(text: str) -> str:
    """Control characters (a terminal's escape sequences, line breaks) as their escapes,
    so that what a file or an event holds can neither rewrite the user's screen nor split
    a one-line message."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
