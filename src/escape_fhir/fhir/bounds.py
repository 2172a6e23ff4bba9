"""Bounds on what a FHIR document may hold, the same for JSON and XML, checked as it is read.

* **Depth.** At most :data:`MAX_DEPTH` nested elements: JSON objects (and arrays directly inside arrays,
  which FHIR never has), XML elements. Real FHIR nests far less (a Bundle's QuestionnaireResponse item tree
  is 10-20 deep); extensions nested 300 deep are valid FHIR (https://hl7.org/fhir/R4/extensibility.html)
  and are read and validated. Checked without recursion, and only when the text has more openers than the
  limit (a document with fewer cannot be deeper).
* **Size.** At most :data:`MAX_CONTAINERS` JSON objects and arrays (XML: twice as many tags), counted on
  the text before it is parsed: a 4.5 MB body of 1.5 million empty objects is refused in milliseconds
  instead of being parsed into gigabytes. A 5 MiB Bundle of referrals has about 56,000 (the knee example:
  220 in 20 KB); the validator needs about 2.5 s for 100,000 on the development machine.
* **Numbers.** A decimal is at most :data:`MAX_NUMBER_CHARS` characters with a magnitude within
  ``1e-308..1e308`` (the range of an IEEE double, which FHIR tools hold decimals in). ``Decimal("1e999999")``
  is cheap, but code that turns it into an integer builds a million-digit number (minutes of CPU).
* **Characters.** No NUL and no lone surrogate in any string or key: neither is valid FHIR
  (https://hl7.org/fhir/R4/datatypes.html#string) and neither can be stored (PostgreSQL text refuses NUL,
  UTF-8 has no surrogates), so both databases refuse them alike, here, before anything is stored.

The walks over a document (the validator, the XML reader and writer, reference rewriting) are recursive,
several Python frames per element; :func:`ensure_recursion` raises the interpreter's limit once so a
document within :data:`MAX_DEPTH` never meets it. Python 3.11+ calls Python functions without using the C
stack, and the parsers' C recursion stays bounded by the depth check, so the raised limit is safe.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from typing import Any

from escape_fhir.errors import FhirFormatError

__all__ = [
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "TooLarge",
    "check_number",
    "check_size",
    "check_strings",
    "ensure_recursion",
    "json_depth",
]

MAX_DEPTH = 400
MAX_CONTAINERS = 100_000
MAX_NUMBER_CHARS = 64
MAX_EXPONENT = 308
#: Python frames one element level may take in the deepest walk (the validator's object, element, item,
#: extension and complex checks), with room for the frames of the server under it.
_FRAMES_PER_LEVEL = 12
_RECURSION_LIMIT = MAX_DEPTH * _FRAMES_PER_LEVEL + 1000
#: A ``\u0000`` or a high/low surrogate escape in JSON text: only then are strings searched one by one.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def ensure_recursion() -> None:
    """Raise the interpreter's recursion limit to what a document of :data:`MAX_DEPTH` needs (never lower it)."""
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)


class TooLarge(FhirFormatError):
    """A document past :data:`MAX_CONTAINERS` (answered 413 over HTTP)."""


def check_size(containers: int, what: str) -> None:
    if containers > MAX_CONTAINERS:
        raise TooLarge(f"more than {MAX_CONTAINERS} {what} (a limit of this server)")


def too_deep(location: str = "") -> FhirFormatError:
    return FhirFormatError(f"nested deeper than {MAX_DEPTH} elements (a limit of this server)", location)


def check_number(text: str, value: Decimal) -> None:
    """ValueError when a decimal's text is too long or its magnitude is beyond the bounds above."""
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"number {text[:20]}... is longer than {MAX_NUMBER_CHARS} characters")
    if value and abs(value.adjusted()) > MAX_EXPONENT:
        raise ValueError(f"number {text} is beyond 1e±{MAX_EXPONENT}")


def json_depth(obj: Any) -> int:
    """Element depth of parsed JSON: nested objects, plus arrays directly inside arrays; iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack += [
                (v, depth + 1 if isinstance(v, dict) else depth) for v in value.values() if isinstance(v, dict | list)
            ]
        else:
            stack += [(v, depth + 1) for v in value if isinstance(v, dict | list)]
    return deepest


def check_strings(text: str, obj: Any) -> None:
    """FhirFormatError naming the first string or key with a NUL or a lone surrogate (see the module doc)."""
    if not _SUSPECT_ESCAPE.search(text):
        return
    root = obj.get("resourceType") if isinstance(obj, dict) else None
    stack: list[tuple[Any, str]] = [(obj, root if isinstance(root, str) else "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                at = f"{where}.{key.encode('unicode_escape').decode('ascii')}".lstrip(".")  # a NUL shown as \x00
                _check_string(key, at)
                stack.append((item, at))
        elif isinstance(value, list):
            stack += [(item, f"{where}[{i}]") for i, item in enumerate(value)]
        elif isinstance(value, str):
            _check_string(value, where)


def _check_string(text: str, where: str) -> None:
    if "\x00" in text:
        raise FhirFormatError("a string must not contain a NUL character (U+0000)", where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FhirFormatError("a string must not contain a lone surrogate (not Unicode text)", where) from None
