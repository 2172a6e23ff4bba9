"""The JSON reader against the exact definitions it must agree with (fhir/jsonio.py, fhir/bounds.py).

Duplicate keys are ruled out by a fast count and checked exactly only when the count cannot rule them out;
these properties prove the two agree on documents made to confuse the count: strings that start with a
colon, escaped quotes and backslash runs before a colon, ``\\u`` escapes, spaces before colons, nesting.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import jsonio
from tests.fuzz.strategies import Pairs, RawNumber, write

tricky_text = st.text(alphabet=':"\\ab/u\né', max_size=8)
keys = st.sampled_from(["a", "b", ":", '"', "\\", 'x":', "a\\", ""]) | tricky_text
leaves = st.one_of(st.integers(-5, 5), tricky_text, st.none(), st.just(RawNumber('"\\u003a"')))


def documents() -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.lists(st.tuples(keys, inner), max_size=4).map(lambda items: Pairs(tuple(items)))
        ),
        max_leaves=16,
    )


def has_duplicates(value: Any) -> bool:
    if isinstance(value, Pairs):
        names = [k for k, _ in value.items]
        return len(set(names)) != len(names) or any(has_duplicates(v) for _, v in value.items)
    if isinstance(value, list):
        return any(has_duplicates(v) for v in value)
    return False


def spaced(text: str, spaces: bool) -> str:
    return text.replace('":', '" :') if spaces else text


@given(members=st.lists(st.tuples(keys, documents()), max_size=5), spaces=st.booleans())
def test_duplicate_keys_are_found_exactly(members: list[tuple[str, Any]], spaces: bool) -> None:
    document = Pairs((("resourceType", "Basic"), *members))
    text = spaced(write(document), spaces)
    try:
        json.loads(text)
    except ValueError:
        return  # "spaces" may have broken a string that held '":'; malformed input is another test's matter
    if has_duplicates(document):
        with pytest.raises(FhirFormatError, match="duplicate JSON key"):
            jsonio.loads(text)
    else:
        assert jsonio.loads(text) == json.loads(text)


@given(document=documents())
def test_read_then_written_then_read_is_the_same(document: Any) -> None:
    text = write(Pairs((("resourceType", "Basic"), ("x", document))))
    try:
        first = jsonio.loads(text)
    except FhirFormatError as e:
        assert "duplicate JSON key" in str(e) or "surrogate" in str(e) or "NUL" in str(e)
        return
    assert jsonio.loads(jsonio.dumps(first)) == first


numbers = st.sampled_from(
    ["0", "-0", "7", "1.50", "1e2", "-0.0", "1E-7", "9223372036854775807", "18446744073709551616"]
)
number_leaves = st.one_of(leaves, numbers.map(RawNumber), st.integers().map(lambda n: RawNumber(str(n))))


def typed(value: Any) -> Any:
    """The value with each leaf's type beside it: Decimal("1") == 1, and the reader must not turn one into the
    other."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, str(value))


@given(
    document=st.recursive(
        number_leaves,
        lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(keys, inner), max_size=4).map(Pairs),
        max_leaves=16,
    ),
    bom=st.booleans(),
)
def test_bytes_read_by_orjson_equal_the_exact_parser(document: Any, bom: bool) -> None:
    """Bytes may be read by orjson (jsonio._fast_loads); text always takes the exact parser. Both must give the
    same values of the same types (a decimal's text, an integer past 64 bits), or the same error."""
    text = write(Pairs((("resourceType", "Basic"), ("x", document))))
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")
    try:
        exact = jsonio.loads(text)
    except FhirFormatError as e:
        with pytest.raises(FhirFormatError) as fast_error:
            jsonio.loads(data)
        assert str(fast_error.value) == str(e)
        return
    assert typed(jsonio.loads(data)) == typed(exact)
