"""Text that came from outside (an event id, a reason quoting a field, a file's header, a
ledger's attribute values), made safe to print in a one-line message.

Whatever revledger echoes of its input goes through `printable` before it reaches stderr,
a log line or a table: a newline in an `event_id` would otherwise start a line of its own
(a forged log line), and control characters could rewrite the terminal. Every character
that is not printable (control characters, line and paragraph separators, format
characters such as U+202E, which reverses the text after it) is written as a Python-style
escape, and so is the backslash itself, so an escape on the screen always means one in the
data. Printable text, non-ASCII letters included, is unchanged.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: str) -> str:
    """`text` on one line, with every non-printable character (and `\\`) escaped."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
