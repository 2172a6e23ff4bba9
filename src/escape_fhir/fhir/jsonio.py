"""FHIR JSON reading and writing that keeps every decimal exactly as written.

FHIR decimals carry their precision in their text (``1.50`` is not ``1.5``, see
https://hl7.org/fhir/R4/datatypes.html#decimal and https://hl7.org/fhir/R4/json.html#primitive), so JSON
numbers with a fraction or exponent are read as :class:`decimal.Decimal`, never as float. When the
Decimal's own text differs from the source (``1e2`` -> ``1E+2``, ``0.0000001`` -> ``1E-7``) the value is a
:class:`RawDecimal` that remembers the source text. Integers stay ``int``.

Why these libraries: the stdlib C scanner with ``parse_float`` is the fastest reader we measured that sees
the number text (orjson reads floats and loses the text; walking its result to detect floats costs as much
as the stdlib parse). Writing uses orjson with ``orjson.Fragment`` to emit each decimal's exact text.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from escape_fhir.errors import FhirFormatError

__all__ = ["RawDecimal", "dumps", "loads"]

_BOM = "\ufeff"


class RawDecimal(Decimal):
    """A Decimal that also keeps the exact text it was read from, written back unchanged."""

    __slots__ = ("raw",)
    raw: str

    def __str__(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"RawDecimal('{self.raw}')"


def decimal_from_text(text: str) -> Decimal:
    """A Decimal for a JSON/XML number text, a :class:`RawDecimal` when ``str()`` would not give the text back."""
    value = Decimal(text)
    if value.__str__() == text:
        return value
    raw = RawDecimal(text)
    raw.raw = text
    return raw


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 section 6) and have no FHIR decimal form.
    raise ValueError(f"{name} is not allowed in JSON")


_DECODER = json.JSONDecoder(parse_float=decimal_from_text, parse_constant=_refuse_constant)


def loads(data: bytes | str) -> dict[str, Any]:
    """Parse FHIR JSON into a dict (key order kept, decimals exact); FhirFormatError if malformed.

    A leading byte order mark is allowed. The top level must be an object.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError as e:
        raise FhirFormatError(f"JSON is not valid UTF-8 (byte {e.start})") from e
    if text.startswith(_BOM):
        text = text[1:]
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise FhirFormatError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except ValueError as e:  # a refused NaN/Infinity
        raise FhirFormatError(f"malformed JSON: {e}") from e
    if not isinstance(obj, dict):
        raise FhirFormatError(f"JSON must be an object, not {type(obj).__name__}")
    return obj


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise TypeError(f"{obj} has no JSON form")
        return orjson.Fragment(str(obj))
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def big_ints_as_fragments(obj: Any) -> Any:
    """A copy with integers beyond 64 bits as raw fragments (orjson refuses them; JSON does not)."""
    if isinstance(obj, dict):
        return {k: big_ints_as_fragments(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [big_ints_as_fragments(v) for v in obj]
    if type(obj) is int and not -(2**63) <= obj < 2**64:
        return orjson.Fragment(str(obj))
    return obj


def dumps(obj: Any, *, pretty: bool = False) -> bytes:
    """Serialise to UTF-8 JSON bytes, each Decimal written with its exact text; key order kept."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    try:
        try:
            return orjson.dumps(obj, default=_default, option=option)
        except orjson.JSONEncodeError as e:
            if "64-bit" not in str(e):
                raise
            return orjson.dumps(big_ints_as_fragments(obj), default=_default, option=option)
    except orjson.JSONEncodeError as e:
        raise FhirFormatError(f"cannot write JSON: {e}") from e
