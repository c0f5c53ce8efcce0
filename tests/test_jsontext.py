"""Reading JSON from outside (ledger.jsontext): a document is read as the standard library
reads it, or refused in one line when it nests too deep or repeats a key in one object,
however it is laid out. Worked cases, then properties over drawn documents."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.jsontext import MAX_DEPTH, UnreadableJSON, read_json

KEYS = st.text(alphabet=st.sampled_from('ab":\\ \n\u00e9'), min_size=1, max_size=4)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                    st.text(alphabet=st.sampled_from('xy":\\ \n{}[],'), max_size=6))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=12)
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


@st.composite
def written(draw: st.DrawFn, value: object, duplicate: bool = False) -> str:
    """`value` as JSON text laid out with drawn white space; with `duplicate`, one object
    (added if there is none) written with a key twice."""
    def text(v: object) -> str:
        ws = draw(SPACE)
        if isinstance(v, dict):
            pairs = [f"{ws}{json.dumps(k)}{draw(SPACE)}:{ws}{text(x)}" for k, x in v.items()]
            return "{" + ",".join(pairs) + ws + "}"
        if isinstance(v, list):
            return "[" + ",".join(ws + text(x) for x in v) + ws + "]"
        return json.dumps(v)

    body = text(value)
    if duplicate:
        key = json.dumps(draw(KEYS))
        body = (f'{{{draw(SPACE)}{key}{draw(SPACE)}:{text(draw(VALUES))},'
                f'{draw(SPACE)}"other":{body},{key}:{draw(SPACE)}{text(draw(VALUES))}}}')
    return body


@given(st.data(), VALUES)
def test_a_document_is_read_as_the_standard_library_reads_it(data, value):
    raw = data.draw(written(value))
    assert read_json(raw.encode()) == json.loads(raw) == value


@given(st.data(), VALUES)
def test_a_key_twice_in_one_object_is_always_refused_and_named(data, value):
    raw = data.draw(written(value, duplicate=True))
    with pytest.raises(UnreadableJSON, match=r"(?s)^duplicate key '.+' in one object$"):
        read_json(raw.encode())


@pytest.mark.parametrize(("depth", "readable"), [(MAX_DEPTH, True), (MAX_DEPTH + 1, False),
                                                 (1_000, False), (100_000, False)])
def test_depth_is_counted_in_levels_of_objects_and_arrays(depth, readable):
    raw = '{"a":' * (depth - 1) + "[]" + "}" * (depth - 1) if depth > 1 else "[]"
    if readable:
        assert read_json(raw) is not None
    else:
        with pytest.raises(UnreadableJSON) as refused:
            read_json(raw)
        assert str(refused.value) == f"nested deeper than {MAX_DEPTH} levels of objects and arrays"


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"a": 1, "b": 99999999999999999999999}', "b: a number this large cannot be kept exactly"),
    (b'{"a": [1, {"b": [1e300]}]}', "a.1.b.0: a number this large cannot be kept exactly"),
    (b'{"a": NaN}', "invalid JSON (unexpected character, expected a JSON value)"),
    (b'{"a": 1', "invalid JSON (unexpected end of data)"),
])
def test_other_refusals_say_where(raw, reason):
    with pytest.raises(UnreadableJSON) as refused:
        read_json(raw)
    assert str(refused.value).startswith(reason)
