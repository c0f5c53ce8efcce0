"""Reading JSON that comes from outside (a feed line, a webhook body, an export), so that a
hostile document costs only itself.

orjson parses up to 1,024 levels deep, but writes (the content hash, a Stripe event's
canonical line) only up to 254, and a Python walk of the value overflows the stack near
1,000: a valid 2 KB line nested 1,000 deep used to pass the parser and crash what came
after, taking its whole batch with it. So every document is refused past an explicit
depth, well inside all three limits and far beyond any real event (a canonical event nests
2 levels, a Stripe event about 10).

orjson keeps the last of duplicate keys, where SQLite's `json_extract` reads the first:
the same stored line would mean two things. A document with a key twice in one object is
refused, the key named. Ruling one out costs two passes over the bytes, not a second
parse: without its white space, every key written ends in '":', so counting those pairs
bounds the keys written from above; when the parsed objects hold as many keys, none was
written twice. Only otherwise (a duplicate, or a string holding '":') is the document
parsed again, slowly, to find the key.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_DEPTH = 64  # levels of objects and arrays in a canonical line (the top object is 1)
_EXACT = 2**53  # beyond this a JSON number decodes to an inexact float


class UnreadableJSON(ValueError):
    """A document refused whole. Its text quotes the input as it is (a key, a path):
    whoever prints it escapes it (`ledger.text.printable`). `value` is what could be
    decoded of it (None for invalid JSON), e.g. to name its id."""

    def __init__(self, reason: str, value: Any = None) -> None:
        super().__init__(reason)
        self.value = value


def read_json(raw: bytes | str, max_depth: int = MAX_DEPTH, *, unique_keys: bool = True) -> Any:
    """The decoded document, or `UnreadableJSON`: invalid JSON, nested deeper than
    `max_depth`, a key twice in one object (unless `unique_keys` is False: for text
    revledger wrote itself, with orjson, which cannot repeat a key), or a number that
    would not be kept exactly."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = exc.args[0].split(":")[0]
        if reason.startswith("depth limit"):
            raise UnreadableJSON(too_deep(max_depth)) from None
        raise UnreadableJSON(f"invalid JSON ({reason})") from None
    try:
        keys = _keys(value, max_depth) if type(value) is dict or type(value) is list else 0
    except _TooDeep:
        raise UnreadableJSON(too_deep(max_depth), value) from None
    except _Inexact:
        raise UnreadableJSON(f"{_inexact_path(value)}: a number this large cannot be kept "
                             "exactly; send it as a string", value) from None
    if unique_keys and keys != _keys_at_most(raw) and (key := _duplicate(raw)) is not None:
        raise UnreadableJSON(f"duplicate key '{key}' in one object", value)
    return value


def too_deep(max_depth: int) -> str:
    """The reason a document nested deeper than `max_depth` levels is refused."""
    return f"nested deeper than {max_depth} levels of objects and arrays"


def nested_within(value: Any, levels: int) -> bool:
    """Whether a value `read_json` has decoded (so of bounded depth, its numbers exact)
    nests at most `levels` levels: a part of a document held to a limit of its own."""
    if type(value) is not dict and type(value) is not list:
        return True
    try:
        _keys(value, levels)
    except _TooDeep:
        return False
    return True


class _TooDeep(Exception):
    pass


class _Inexact(Exception):
    pass


def _keys(value: dict[str, Any] | list[Any], levels: int) -> int:
    """The keys of a decoded container and of all it holds; `_TooDeep` if it nests more
    than `levels` levels (itself included), `_Inexact` at a number that could not be kept
    exactly (orjson turns integers beyond 64 bits into floats). Every line comes through
    here: one plain recursion, no path kept (`_inexact_path` finds it for the error)."""
    if type(value) is dict:
        count, items = len(value), value.values()
    else:
        count, items = 0, value
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            if levels == 1:
                raise _TooDeep
            count += _keys(item, levels - 1)
        elif kind is float and abs(item) >= _EXACT:
            raise _Inexact
    return count


def _inexact_path(value: Any, path: str = "") -> str | None:
    """The path of the first number that could not be kept exactly (`a.0.b`)."""
    items: Any = value.items() if type(value) is dict else enumerate(value)
    for key, item in items:
        if type(item) is float and abs(item) >= _EXACT:
            return f"{path}{key}"
        if type(item) is dict or type(item) is list:
            found = _inexact_path(item, f"{path}{key}.")
            if found is not None:
                return found
    return None


def _keys_at_most(raw: bytes | str) -> int:
    """At least the number of keys written in a valid JSON document: once its white space
    is gone, each key's closing quote is followed by ':' (strings may hold more)."""
    data = raw.encode() if isinstance(raw, str) else raw
    return data.translate(None, b" \t\r\n").count(b'":')


def _duplicate(raw: bytes | str) -> str | None:
    """The first key written twice in one object (the slow parse, for the error only)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return {}

    json.loads(raw, object_pairs_hook=pairs)
    return found[0] if found else None
