"""The compiled JSON checks (``_jsonscan.pyx``) against plain Python definitions of what they count.

``jsonio._fast_loads`` takes from ``_jsonscan.scan`` the ``{``/``[`` bytes of the text (inside strings too, as
the Python path counts them: the size and depth limits read that number) and its colons outside strings,
and from ``_jsonscan.members`` the members of every dict msgspec made; the two differ exactly when msgspec
dropped a duplicate key. Checked here: both scans (SSE2 and the plain loop) against a reference written
from the JSON grammar, on generated texts full of quotes, backslash runs, colons and brackets inside strings
and keys, ``\\u003a``, non-ASCII, at every offset across the 64-byte blocks; the member count against the
duplicates the texts were made with; every Bundle of the repository; that ``loads`` answers the same with
and without the module; and that the compiled path is the one taken when the module is built.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import bounds, jsonio
from tests.fuzz.strategies import Pairs, RawNumber, write
from tests.helpers import EXAMPLES, ROOT

#: Generation and example time depend on the machine's load (CI shares it); neither is what is tested.
_RELAXED = settings(
    database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

try:
    from escape_fhir.fhir import _jsonscan
except ImportError:  # not built here (ESCAPE_FHIR_PURE=1, no compiler)
    _jsonscan = None  # type: ignore[assignment]

native = pytest.mark.skipif(
    _jsonscan is None,
    reason="the compiled JSON checks (_jsonscan, Cython) are not built here: ./dev setup builds them where a C compiler is",
)

bounds.ensure_recursion()  # raised by the first deep read anyway; raised here first, hypothesis does not see it change

BUNDLES = sorted((ROOT / "tests" / "fhir" / "senders").glob("*.json")) + sorted((EXAMPLES / "bundles").glob("*.json"))


def reference_scan(raw: bytes) -> tuple[int, int]:
    """``(openers, colons outside strings)`` read the plain way: byte by byte, a backslash in a string
    escaping the byte after it."""
    openers = raw.count(b"{") + raw.count(b"[")
    colons = 0
    inside = escaped = False
    for byte in raw:
        if inside:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                inside = False
        elif byte == 0x22:
            inside = True
        elif byte == 0x3A:  # colon
            colons += 1
    return openers, colons


def typed(value: Any) -> Any:
    """A form that compares key order and value types too (1 == True == Decimal(1) otherwise)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, Decimal):
        return (type(value).__name__, str(value))
    return (type(value).__name__, value)


def outcome(data: bytes | str) -> Any:
    try:
        return typed(jsonio.loads(data))
    except FhirFormatError as e:
        return ("error", type(e).__name__, str(e), e.location)


def python_outcome(data: bytes | str, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(jsonio, "native_scan", None)
        m.setattr(jsonio, "native_members", None)
        return outcome(data)


# ---- generated texts --------------------------------------------------------------------------------------

# Strings made to confuse a scanner: quotes, backslash runs of every parity before quotes, colons and
# brackets, the escape of a colon, non-ASCII (2, 3 and 4 UTF-8 bytes), long runs that cross a 64-byte block.
pieces = st.sampled_from(
    ['"', "\\", '\\"', '\\\\"', "\\\\\\", ":", "{", "[", "}", "]", ",", "a", " ", "é", "€", "😀", "\u2028", "\n"]
)
tricky = st.lists(pieces | st.text(max_size=3), max_size=12).map("".join) | st.builds(
    lambda s, n: s * n, pieces, st.integers(1, 70)
)
keys = tricky | st.sampled_from(["a", "b", ":", "a:", ""])
leaves = st.one_of(
    tricky,
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
    st.just(RawNumber('"\\u003a"')),
    st.just(RawNumber('"a\\u003A\\\\"')),
    st.just(RawNumber("1.50")),
)
documents = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.tuples(keys, inner), max_size=4).map(lambda items: Pairs(tuple(items)))
    ),
    max_leaves=20,
)


def pretty(value: Any, indent: int) -> str:
    """The same document with whitespace around every token (as senders write it)."""
    return json.dumps(json.loads(write(value)), indent=indent, ensure_ascii=False) if indent else write(value)


def members_written(value: Any) -> int:
    if isinstance(value, Pairs):
        return len(value.items) + sum(members_written(v) for _, v in value.items)
    if isinstance(value, list):
        return sum(members_written(v) for v in value)
    return 0


def duplicated(value: Any) -> bool:
    if isinstance(value, Pairs):
        names = [k for k, _ in value.items]
        return len(set(names)) != len(names) or any(duplicated(v) for _, v in value.items)
    if isinstance(value, list):
        return any(duplicated(v) for v in value)
    return False


@native
@_RELAXED
@given(members=st.lists(st.tuples(keys, documents), max_size=6), pad=st.integers(0, 70), indent=st.sampled_from([0, 2]))
def test_scan_counts_what_the_reference_counts(members: list[tuple[str, Any]], pad: int, indent: int) -> None:
    document = Pairs((("resourceType", "Basic"), *members))
    text = " " * pad + write(document)  # the padding moves every byte across the 64-byte blocks
    if indent and not duplicated(document):
        text = " " * pad + pretty(document, indent)
    raw = text.encode("utf-8")
    expected = reference_scan(raw)
    assert _jsonscan.scan(raw) == expected
    assert _jsonscan.scan_portable(raw) == expected
    assert expected[1] == members_written(document)  # the reference itself: one colon per member written


@native
@_RELAXED
@given(members=st.lists(st.tuples(keys, documents), max_size=6))
def test_members_differ_from_the_colons_exactly_when_a_key_is_repeated(members: list[tuple[str, Any]]) -> None:
    document = Pairs((("resourceType", "Basic"), *members))
    raw = write(document).encode("utf-8")
    obj = jsonio._MSGSPEC.decode(raw)
    assert (_jsonscan.members(obj) != _jsonscan.scan(raw)[1]) == duplicated(document)


@native
@_RELAXED
@given(data=st.binary(max_size=300) | st.lists(st.sampled_from([b'"', b"\\", b":", b"{", b"[", b"a"])).map(b"".join))
def test_scan_of_any_bytes_ends_and_both_loops_agree(data: bytes) -> None:
    """Not JSON: the colon count means nothing then (msgspec refuses the text first), but the scan ends
    within the text and both implementations give the same numbers; the openers are always exact."""
    found = _jsonscan.scan(data)
    assert found == _jsonscan.scan_portable(data)
    assert found[0] == data.count(b"{") + data.count(b"[")


@_RELAXED
@given(members=st.lists(st.tuples(keys, documents), max_size=5), bom=st.booleans())
def test_loads_is_the_same_with_and_without_the_compiled_checks(members: list[tuple[str, Any]], bom: bool) -> None:
    text = write(Pairs((("resourceType", "Basic"), *members)))
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    with pytest.MonkeyPatch.context() as m:
        assert outcome(data) == python_outcome(data, m) == outcome(text)


# ---- the repository's Bundles -------------------------------------------------------------------------------


@native
@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_repository_bundles(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = path.read_bytes()
    expected = reference_scan(raw)
    assert _jsonscan.scan(raw) == _jsonscan.scan_portable(raw) == expected
    assert _jsonscan.members(jsonio._MSGSPEC.decode(raw)) == expected[1]
    assert outcome(raw) == python_outcome(raw, monkeypatch) == outcome(raw.decode("utf-8"))


# ---- cases by hand -------------------------------------------------------------------------------------------

CASES = [
    b'{"resourceType": "Basic", "a": 1, "a": 2}',
    b'{"resourceType": "Basic", "x": {"y": [{"z": {"a": 1, "a": {}}}]}}',  # deep in arrays
    b'{"resourceType": "Basic", "a:": 1, "a\\u003a": 2}',  # the same key, once escaped
    b'{"resourceType": "Basic", "a\\u003a": 1, "b": "\\u003a"}',
    b'{"resourceType": "Basic", "a": "\\\\", "b": "\\"", "c": "\\\\\\"", "d": ":"}',
    b'{"resourceType": "Basic", "a": {}, "b": [{}, [], {"c": {}}], "d": {"e": {}}}',
    b'{"resourceType": "Basic", "\xc3\xa9:": "\xe2\x82\xac\\"{[", "\xf0\x9f\x98\x80": [":"]}',
    b'\xef\xbb\xbf{"resourceType": "Basic", "a": 1}',
    b"[1, 2]",
    b'"text"',
    b'{"resourceType": "Basic", "a": tru}',
    b'{"resourceType": "Basic", "a": 1e999}',
    b'{"resourceType": "Basic", "a": "x\\u0000"}',
    b'{"resourceType": "Basic", "a": "\\ud800"}',
    b'{"resourceType": "Basic", "a": ' + b'{"b": ' * 450 + b"1" + b"}" * 451,  # too deep
    b'{"resourceType": "Basic", "a": ' + b'{"b": ' * 390 + b"1" + b"}" * 391,  # deep, within the limit
    b'{"resourceType": "Basic", "a": ' + b'{"b": ' * 390 + b'{"c": 1, "c": 2}' + b"}" * 391,
    b'{"resourceType": "Basic", "a": [' + b",".join([b'{"b": [1]}'] * 300) + b"]}",  # a wide tree
    b'{"resourceType": "Basic", "a": "' + b"{" * (bounds.MAX_CONTAINERS + 1) + b'"}',  # openers in a string count
    b'{"resourceType": "Basic", "a": [' + b"[]," * bounds.MAX_CONTAINERS + b"[]]}",
]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_cases_read_the_same_on_both_paths(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert outcome(data) == python_outcome(data, monkeypatch) == outcome(data.decode("utf-8"))


@native
@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_cases_scan_as_the_reference(data: bytes) -> None:
    assert _jsonscan.scan(data) == _jsonscan.scan_portable(data) == reference_scan(data)


@native
def test_duplicates_are_left_to_the_exact_path() -> None:
    assert jsonio._fast_loads(CASES[0]) is None
    assert jsonio._fast_loads(CASES[1]) is None
    assert jsonio._fast_loads(CASES[2]) is None
    assert jsonio._fast_loads(CASES[16]) is None
    with pytest.raises(FhirFormatError, match="duplicate JSON key 'c'"):
        jsonio.loads(CASES[16])


@native
def test_a_bytes_subclass_is_read() -> None:
    class Body(bytes):
        pass

    assert jsonio.loads(Body(CASES[3])) == jsonio.loads(CASES[3].decode("utf-8"))


# ---- the compiled path is the one taken ----------------------------------------------------------------------


@native
def test_compiled_checks_are_used_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    assert jsonio.native_scan is _jsonscan.scan and jsonio.native_members is _jsonscan.members
    raw = (EXAMPLES / "bundles" / "back-physio-medium.message.json").read_bytes()
    expected = outcome(raw.decode("utf-8"))

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the Python checks or the exact parser ran: the compiled path was not taken")

    monkeypatch.setattr(jsonio, "_no_duplicates", refuse)
    monkeypatch.setattr(jsonio, "_DECODER", SimpleNamespace(decode=refuse))
    monkeypatch.setattr(jsonio, "_CHECKING_DECODER", SimpleNamespace(decode=refuse))
    assert outcome(raw) == expected
    assert jsonio._fast_loads(raw) is not None


def test_without_the_module_the_python_checks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = (EXAMPLES / "bundles" / "knee-gp.message.json").read_bytes()
    expected = outcome(raw)
    calls: list[int] = []
    original = jsonio._no_duplicates

    def counted(*args: Any) -> bool:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(jsonio, "native_scan", None)
    monkeypatch.setattr(jsonio, "native_members", None)
    monkeypatch.setattr(jsonio, "_no_duplicates", counted)
    assert outcome(raw) == expected
    assert calls
