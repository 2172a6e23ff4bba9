"""FHIR JSON reading and writing that keeps every decimal exactly as written.

FHIR decimals carry their precision in their text (``1.50`` is not ``1.5``, see
https://hl7.org/fhir/R4/datatypes.html#decimal and https://hl7.org/fhir/R4/json.html#primitive), so JSON
numbers with a fraction or exponent are read as :class:`decimal.Decimal`, never as float. When the
Decimal's own text differs from the source (``1e2`` -> ``1E+2``, ``0.0000001`` -> ``1E-7``) the value is a
:class:`RawDecimal` that remembers the source text. Integers stay ``int``.

Reading refuses duplicate keys (RFC 8259 section 4 leaves them undefined; a second NHS number ``value`` in
one identifier must not silently replace the first), documents nested deeper than ``bounds.MAX_DEPTH``,
decimals beyond ``bounds``' magnitude, and strings with NUL or lone surrogates (:mod:`escape_fhir.fhir.bounds`).

Why these libraries: msgspec reads JSON at orjson's speed and hands each decimal's text to a hook
(:func:`decimal_from_text`), so decimals stay exact and integers of any length stay ``int``; it is the first
reader. Whatever it refuses, and a document that may hold a duplicate key, goes to the stdlib C scanner with
``parse_float`` (slower, about 1.5x orjson's time plus the per-object duplicate check), which gives the
exact error message with its line and column. Both paths apply the same checks (duplicates, depth, size,
characters), and tests/fuzz/test_fuzz_json.py checks they agree. Writing uses orjson with
``orjson.Fragment`` to emit each decimal's exact text.

The msgspec path's checks (the openers that bound size and depth, and whether a duplicate key may have been
dropped) run in C when :mod:`escape_fhir.fhir._jsonscan` is compiled (Cython, setup.py): one pass over the
text counts the openers and the colons outside strings (one per member written), and the members of the
dicts msgspec made are counted and compared with the latter. Where it is not built (no compiler,
``ESCAPE_FHIR_PURE=1``), the same questions are answered in Python below (byte counts and orjson's writing
of the result), with the same outcome; tests/fhir/test_json_native.py checks both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import bounds

#: The compiled checks (``_jsonscan``): ``scan`` gives a text's ``{``/``[`` bytes and its colons outside
#: strings, ``members`` the members of every dict msgspec made of it; None where the module is not built
#: (the Python checks in :func:`_fast_loads` then).
native_scan: Callable[[bytes], tuple[int, int]] | None
native_members: Callable[[dict[str, Any]], int] | None
try:
    from escape_fhir.fhir._jsonscan import members as native_members
    from escape_fhir.fhir._jsonscan import scan as native_scan
except ImportError:  # not built (no compiler, ESCAPE_FHIR_PURE=1)
    native_scan = native_members = None

__all__ = ["RawDecimal", "dumps", "loads"]

_BOM = "\ufeff"
_STRING = json.encoder.encode_basestring  # the C string writer, non-ASCII kept


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
    bounds.check_number(text, value)
    if value.__str__() == text:
        return value
    raw = RawDecimal(text)
    raw.raw = text
    return raw


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 section 6) and have no FHIR decimal form.
    raise ValueError(f"{name} is not allowed in JSON")


class DuplicateKeyError(ValueError):
    """The same key twice in one JSON object; the message names the key (the location is added later)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The exact check: the decoder calls this once per object with its members in order. It costs about
    # 0.9 microseconds per object, so it runs only when the fast count below cannot rule duplicates out.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(parse_float=decimal_from_text, parse_constant=_refuse_constant)
_MSGSPEC = msgspec.json.Decoder(float_hook=decimal_from_text)
#: Every byte but the colon and the two openers: deleting them leaves what the checks count.
_NOT_STRUCTURE = bytes(range(256)).translate(None, b":{[")
_CHECKING_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=decimal_from_text, parse_constant=_refuse_constant
)
#: The one escape that writes a colon (``\\u003a``): only then is the fast count below not exact.
_ESCAPED_COLON = re.compile(r"\\u003[aA]")


def _has_escape(raw: bytes, escape: bytes) -> bool:
    """Whether ``escape`` (a backslash sequence) is in ``raw``. A single-byte search for the backslash goes
    first: it runs at memchr speed, where CPython's search for a longer needle looks at every byte (about
    a microsecond per kilobyte), and most documents have no backslash at all."""
    return b"\\" in raw and escape in raw


def _no_duplicates(raw: bytes, text: str | None, obj: dict[str, Any], colons: int | None = None) -> bool:
    """True when the parsed ``obj`` kept every member of ``text``; False when it may not have.

    Every object member is written with exactly one colon outside strings, and strings are the same in
    ``text`` and in orjson's writing of ``obj`` (a colon is never escaped, except as ``\\u003a``). So the
    colons of the two texts are equal exactly when no member was dropped, and a duplicate key drops one.
    Two counts at C speed instead of a Python call per object; the exact check runs when this says False.
    Counting on the UTF-8 bytes gives the same numbers (no multi-byte character contains an ASCII byte) and
    is quicker than on a str that holds non-ASCII text.
    """
    if _has_escape(raw, b"\\u003") and _ESCAPED_COLON.search(raw.decode("utf-8") if text is None else text):
        return False
    try:
        written = orjson.dumps(obj, default=_default)
    except (orjson.JSONEncodeError, TypeError):  # deeper than orjson writes, or an integer past 64 bits
        try:
            written = dumps(obj)
        except FhirFormatError:
            return False
    return (raw.count(b":") if colons is None else colons) == written.count(b":")


def loads(data: bytes | str) -> dict[str, Any]:
    """Parse FHIR JSON into a dict (key order kept, decimals exact); FhirFormatError if malformed.

    A leading byte order mark is allowed. The top level must be an object.
    """
    fast = _fast_loads(data) if isinstance(data, bytes) else None
    if fast is not None:
        return fast
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError as e:
        raise FhirFormatError(f"JSON is not valid UTF-8 (byte {e.start})") from e
    raw = bytes(data) if isinstance(data, bytes | bytearray) else data.encode("utf-8", "surrogatepass")
    if text.startswith(_BOM):
        text = text[1:]
    bounds.ensure_recursion()
    # A document with fewer openers than the depth limit cannot pass it; only bigger ones are checked, first
    # by orjson (no Python recursion, refuses beyond 1024 levels) so the stdlib scanner never recurses deeper.
    containers = raw.count(b"{") + raw.count(b"[")
    bounds.check_size(containers, "JSON objects and arrays")
    deep_possible = containers > bounds.MAX_DEPTH
    if deep_possible:
        _bounded_nesting(text)
    try:
        obj = _DECODER.decode(text)
        if not _no_duplicates(raw, text, obj):
            obj = _CHECKING_DECODER.decode(text)  # raises DuplicateKeyError at the first duplicate
    except json.JSONDecodeError as e:
        raise FhirFormatError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except DuplicateKeyError as e:
        raise _duplicate(text, str(e)) from None
    except RecursionError:
        raise bounds.too_deep() from None
    except ValueError as e:  # a refused NaN/Infinity, a number beyond the bounds, an integer of 4300+ digits
        raise FhirFormatError(f"malformed JSON: {e}") from e
    if not isinstance(obj, dict):
        raise FhirFormatError(f"JSON must be an object, not {type(obj).__name__}")
    if deep_possible and bounds.json_depth(obj) > bounds.MAX_DEPTH:
        raise bounds.too_deep()
    if _has_escape(raw, b"\\u"):  # a NUL or a lone surrogate can only come as an escape (bounds.check_strings)
        bounds.check_strings(text, obj)
    return obj


def _fast_loads(raw: bytes) -> dict[str, Any] | None:
    """The document read by msgspec with every check of :func:`loads`; None when the exact path must read it:
    a possible duplicate key (named by the exact path), or anything msgspec refuses (malformed, not UTF-8, a
    lone surrogate, a number beyond the bounds), so that the error message is the exact path's."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    scan, members = native_scan, native_members
    if scan is not None and members is not None:
        containers, outside_colons = scan(raw)  # colons outside strings: one per member, duplicates included
    else:
        structure = raw.translate(None, _NOT_STRUCTURE)  # one pass instead of three counts over the whole text
        colons = structure.count(b":")
        containers = len(structure) - colons
    if containers > bounds.MAX_CONTAINERS:
        return None  # refused by the exact path, after the same checks in the same order
    if containers > bounds.MAX_DEPTH:
        # msgspec recurses in C to the interpreter's (raised) limit: bound the nesting first, as the exact
        # path does, with orjson (refuses beyond 1024 levels without recursing).
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    try:
        obj = _MSGSPEC.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    if scan is not None and members is not None:
        if members(obj) != outside_colons:  # a duplicate key dropped a member
            return None
    elif not _no_duplicates(raw, None, obj, colons):
        return None
    if containers > bounds.MAX_DEPTH and bounds.json_depth(obj) > bounds.MAX_DEPTH:
        raise bounds.too_deep()
    if _has_escape(raw, b"\\u"):  # a NUL can only come as an escape (msgspec refuses lone surrogates)
        bounds.check_strings(raw.decode("utf-8"), obj)
    return obj


def _bounded_nesting(text: str) -> None:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as e:
        if "depth limit" in str(e):
            raise bounds.too_deep() from None
        # anything else orjson refuses (e.g. lone surrogates) is reported by the exact parse that follows


def _duplicate(text: str, key: str) -> FhirFormatError:
    """The error for a duplicate key, located by a second parse that tracks the path (the rare case only)."""
    return FhirFormatError(
        f"duplicate JSON key {key!r} (each member may appear once, RFC 8259 section 4)", _where(text, key)
    )


def _where(text: str, key: str) -> str:
    """The FHIRPath-like location of the first duplicate ``key``: a second parse marks the objects that hold
    it, then an iterative search finds the first marked one (the rare, refused case only)."""
    marker = "\x00duplicate\x00"  # a key no parsed JSON can have: NUL is refused in keys
    decoder = json.JSONDecoder(
        object_pairs_hook=lambda pairs: _mark(pairs, key, marker), parse_float=str, parse_constant=str
    )
    try:
        obj = decoder.decode(text)
    except ValueError:  # the text after the duplicate is malformed too: name the key alone
        return key
    path = _path_to(obj, marker, obj.get("resourceType") if isinstance(obj, dict) else "")
    return f"{path}.{key}" if path else key


def _mark(pairs: list[tuple[str, Any]], key: str, marker: str) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs) and [k for k, _ in pairs].count(key) > 1:
        obj[marker] = True
    return obj


def _path_to(obj: Any, marker: str, root: Any) -> str:
    stack: list[tuple[Any, str]] = [(obj, root if isinstance(root, str) else "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            if marker in value:
                return where
            stack += [(v, f"{where}.{k}" if where else k) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return ""


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


def dumps(obj: Any, *, pretty: bool = False, sort_keys: bool = False) -> bytes:
    """Serialise to UTF-8 JSON bytes, each Decimal written with its exact text; key order kept (or sorted)."""
    option = (orjson.OPT_INDENT_2 if pretty else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        try:
            return orjson.dumps(obj, default=_default, option=option)
        except orjson.JSONEncodeError as e:
            if "Recursion limit" in str(e):
                return _deep_dumps(obj, sort_keys)
            if "64-bit" not in str(e):
                raise
            return orjson.dumps(big_ints_as_fragments(obj), default=_default, option=option)
    except (orjson.JSONEncodeError, TypeError) as e:
        raise FhirFormatError(f"cannot write JSON: {e}") from e


def _deep_dumps(obj: Any, sort_keys: bool = False) -> bytes:
    """Compact JSON of a document deeper than orjson writes (255 levels; bounds.MAX_DEPTH allows more, e.g.
    extensions nested 300 deep). Rare, so plain Python; the depth was bounded when the document was read."""
    bounds.ensure_recursion()
    out: list[str] = []
    _write(obj, out, sort_keys)
    return "".join(out).encode("utf-8")


def _write(obj: Any, out: list[str], sort_keys: bool) -> None:
    if isinstance(obj, dict):
        out.append("{")
        for n, (key, value) in enumerate(sorted(obj.items()) if sort_keys else obj.items()):
            out.append(f"{',' if n else ''}{_STRING(key)}:")
            _write(value, out, sort_keys)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for n, value in enumerate(obj):
            if n:
                out.append(",")
            _write(value, out, sort_keys)
        out.append("]")
    elif isinstance(obj, str):
        out.append(_STRING(obj))
    elif obj is None or isinstance(obj, bool | int):
        out.append(json.dumps(obj))
    elif isinstance(obj, Decimal):
        if not obj.is_finite():
            raise TypeError(f"{obj} has no JSON form")
        out.append(str(obj))
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")
