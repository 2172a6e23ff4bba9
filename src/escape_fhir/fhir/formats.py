"""The one entry point for FHIR wire formats: parse and write JSON or XML, and pick a format from a MIME type.

FHIR defines ``application/fhir+json`` and ``application/fhir+xml``, accepts plain ``application/json``,
``application/xml`` and ``text/xml``, and the ``_format`` short forms ``json`` and ``xml``
(https://hl7.org/fhir/R4/http.html#mime-type). Parameters such as ``charset`` and ``fhirVersion`` are
ignored here (content is always UTF-8; the version is R4).
"""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import FhirFormatError, Issue
from escape_fhir.fhir import jsonio, xmlio

__all__ = ["MIME", "dump", "format_from_mime", "parse"]

MIME = {"json": "application/fhir+json", "xml": "application/fhir+xml"}

_MIME_FORMATS = {
    "application/fhir+json": "json",
    "application/json": "json",
    "application/json+fhir": "json",  # the DSTU2 name, still sent by some engines
    "json": "json",
    "application/fhir+xml": "xml",
    "application/xml": "xml",
    "application/xml+fhir": "xml",
    "text/xml": "xml",
    "xml": "xml",
}
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def format_from_mime(content_type: str) -> str | None:
    """``"json"``, ``"xml"`` or None for a Content-Type / Accept value or a ``_format`` short form."""
    media = content_type.split(";", 1)[0].strip().lower()
    return _MIME_FORMATS.get(media)


def sniff(data: bytes) -> str | None:
    """Guess the format from the first non-whitespace byte after an optional UTF-8 BOM."""
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    first = body.lstrip(_WHITESPACE)[:1]
    return {b"{": "json", b"<": "xml"}.get(first)


def parse(data: bytes, fmt: str | None = None, issues: list[Issue] | None = None) -> dict[str, Any]:
    """Parse a FHIR resource from JSON or XML bytes (``fmt`` None: sniffed); FhirFormatError if unusable.

    ``issues`` is for validation: XML that FHIR XML does not allow but that can still be read (an unknown
    element, elements out of definition order) is reported there rather than refused (``xmlio.xml_to_json``).
    JSON needs nothing of the kind: the validator finds an unknown JSON property itself, and JSON has no order.
    """
    fmt = fmt or sniff(data)
    if fmt == "xml":
        return xmlio.xml_to_json(data, issues)
    if fmt != "json":
        raise FhirFormatError("content is neither FHIR JSON nor FHIR XML" if fmt is None else f"unknown format {fmt}")
    resource = jsonio.loads(data)
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise FhirFormatError("a FHIR resource must have a string resourceType")
    return resource


def dump(resource: dict[str, Any], fmt: str, *, pretty: bool = False) -> bytes:
    """Write a resource as ``"json"`` or ``"xml"`` bytes (UTF-8)."""
    if fmt == "json":
        return jsonio.dumps(resource, pretty=pretty)
    if fmt == "xml":
        return xmlio.json_to_xml(resource, pretty=pretty)
    raise FhirFormatError(f"unknown format {fmt}")
