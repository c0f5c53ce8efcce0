"""Errors the user can act on, shared by every entry point."""


class LedgerError(Exception):
    """A failure the user can act on (bad database URL, unreachable server, ...); its text
    is one line."""
