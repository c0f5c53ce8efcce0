"""Errors the user can act on, shared by every entry point, and the escaping of what an
entry point echoes of its input (an id, a reason) so that it stays on its line."""

from ledger.text import printable

__all__ = ["LedgerError", "printable"]


class LedgerError(Exception):
    """A failure the user can act on (bad database URL, unreachable server, ...); its text
    is one line."""
