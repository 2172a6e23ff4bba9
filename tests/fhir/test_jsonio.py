"""FHIR JSON reading/writing: decimals byte-exact, key order kept, errors with line and column."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.jsonio import RawDecimal, _fast_loads, dumps, loads
from tests.helpers import ROOT

NUMBERS = [
    "1.50",
    "0.000",
    "-0.5",
    "1E+3",
    "1e2",
    "1E-7",
    "0.0000001",
    "100",
    "-0.0",
    "1.0e-10",
    "3.141592653589793238462643383279",
    "12345678901234567890123",
    "0",
    "-17",
]


@pytest.mark.parametrize("text", [pytest.param(n, id=n) for n in NUMBERS])
def test_number_text_comes_back_byte_identical(text: str) -> None:
    doc = f'{{"resourceType":"Observation","valueDecimal":{text}}}'.encode()
    assert dumps(loads(doc)) == doc


def test_fraction_and_exponent_numbers_are_decimals_never_floats() -> None:
    obj = loads(b'{"a":1.50,"b":1e2,"c":7}')
    assert type(obj["a"]) is Decimal and str(obj["a"]) == "1.50"
    assert isinstance(obj["b"], RawDecimal) and obj["b"] == 100 and str(obj["b"]) == "1e2"
    assert type(obj["c"]) is int


def test_key_order_and_utf8_kept() -> None:
    doc = '{"resourceType":"Patient","name":[{"given":["Zoë","Ånn"],"family":"Ó Briain"}],"active":true}'.encode()
    obj = loads(doc)
    assert list(obj) == ["resourceType", "name", "active"]
    assert dumps(obj) == doc


def test_pretty_output_parses_back_the_same() -> None:
    obj = loads(b'{"resourceType":"Observation","valueQuantity":{"value":0.10,"unit":"mg"}}')
    text = dumps(obj, pretty=True)
    assert b"\n  " in text and b"0.10" in text
    assert dumps(loads(text)) == dumps(obj)


def test_decimals_made_in_code_are_written_with_their_own_text() -> None:
    assert dumps({"v": Decimal("2.500"), "w": Decimal("1E+2")}) == b'{"v":2.500,"w":1E+2}'


def test_bom_and_str_input_accepted() -> None:
    assert loads(b'\xef\xbb\xbf{"resourceType":"Patient"}') == {"resourceType": "Patient"}
    assert loads('{"resourceType":"Patient"}') == {"resourceType": "Patient"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b'{"resourceType": "Patient",\n  "active": tru}', "line 2 column 13", id="bad-literal"),
        pytest.param(b'{"a": [1,]}', "line 1 column 10", id="trailing-comma"),
        pytest.param(b'{"a": 1', "line 1 column 8", id="truncated"),
        pytest.param(b'{"a": NaN}', "NaN is not allowed", id="nan"),
        pytest.param(b'{"a": -Infinity}', "-Infinity is not allowed", id="infinity"),
        pytest.param(b"[1, 2]", "JSON must be an object, not list", id="array-top-level"),
        pytest.param(b'"Patient"', "JSON must be an object, not str", id="string-top-level"),
        pytest.param(b'{"a": "\xff"}', "not valid UTF-8 (byte 7)", id="bad-utf8"),
        pytest.param(b"", "line 1 column 1", id="empty"),
    ],
)
def test_malformed_json_is_a_format_error_with_position(data: bytes, message: str) -> None:
    with pytest.raises(FhirFormatError) as err:
        loads(data)
    assert message in str(err.value)


def test_unwritable_values_are_format_errors() -> None:
    with pytest.raises(FhirFormatError):
        dumps({"v": Decimal("NaN")})
    with pytest.raises(FhirFormatError):
        dumps({"v": object()})


def test_same_values_as_orjson_apart_from_decimals() -> None:
    doc = b'{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"a","active":false}}]}'
    assert loads(doc) == orjson.loads(doc)


def test_the_fast_reader_keeps_every_number_exact() -> None:
    """Bytes are read by msgspec (jsonio._fast_loads): decimals keep their text, integers past 64 bits stay
    integers; a possible duplicate key or anything msgspec refuses is left to the exact parser (None)."""
    bundle = (ROOT / "examples" / "bundles" / "knee-gp.message.json").read_bytes()
    assert _fast_loads(bundle) == loads(bundle.decode("utf-8"))
    got = _fast_loads(b'{"a": [1.50, 1e2, 12345678901234567890123, -0]}')
    assert got is not None
    assert [str(v) for v in got["a"]] == ["1.50", "1e2", "12345678901234567890123", "0"]
    assert [type(v) for v in got["a"]] == [Decimal, RawDecimal, int, int]
    assert _fast_loads(b'{"a": 1, "a": 2}') is None  # the exact path names the duplicate
    assert _fast_loads(b'{"a": 1e999}') is None  # beyond the bounds: the exact path's message
    assert _fast_loads(b'{"a": tru}') is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"resourceType": "Basic", "a": 1, "a": 2}', "duplicate JSON key 'a'"),
        (b'{"resourceType": "Basic", "a": "x\\u0000"}', "NUL"),
        (b'{"resourceType": "Basic", "a": "\\ud800"}', "lone surrogate"),
        (b'{"resourceType": "Basic", "a": ' + b'{"b": ' * 450 + b"1" + b"}" * 451, "nested deeper than 400"),
    ],
)
def test_hardening_holds_on_bytes_as_on_text(data: bytes, message: str) -> None:
    for given in (data, data.decode("utf-8")):
        with pytest.raises(FhirFormatError, match=message):
            loads(given)
