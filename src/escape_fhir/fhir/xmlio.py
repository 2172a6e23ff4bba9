"""FHIR R4 XML <-> FHIR JSON (as Python dicts), following the R4 representation rules, with safe parsing.

Rules applied (https://hl7.org/fhir/R4/xml.html and https://hl7.org/fhir/R4/json.html):

- elements are in the ``http://hl7.org/fhir`` namespace; the root element is named after the resource type;
- primitive values are ``value`` attributes; element ids and ``Extension.url`` are attributes
  (``representation = xmlAttr`` in the definitions); in JSON a primitive's id and extensions go in
  ``_name``, aligned with ``null`` in arrays;
- nested resources (``contained``, ``Bundle.entry.resource``, ``Parameters.parameter.resource``...) are
  wrapped in an element named after their type;
- ``Narrative.div`` is XHTML in XML and a string holding the serialised ``div`` with its namespace in JSON;
- arrays follow the element's max cardinality; JSON number/boolean/string follows the primitive type, with
  decimals kept exact (:mod:`escape_fhir.fhir.jsonio`); XML element order is the definition order.

The parts: safe parsing and the narrative (:mod:`xml_parse`: no DOCTYPE, no entities, no network, the same
depth bound as JSON), the tables of each context's children (:mod:`xml_tables`), the reader
(:mod:`xml_read`) and the writer (:mod:`xml_write`).

Reading has a fast path (issue 11): :mod:`escape_fhir.fhir._xmlread`, compiled with Cython when the package
is built (setup.py), walks libxml2's nodes through lxml's C API instead of making a Python proxy per element,
and builds the same dicts as :class:`XmlReader`. It reads only the common, valid case; for anything else
(an unknown or misplaced element, text, a bad value...) it gives up and :class:`XmlReader` reads the
document from the start, so errors, locations and validation issues are those of the Python reader. Where
the extension is not built (no compiler, ``ESCAPE_FHIR_PURE=1``), :class:`XmlReader` alone reads, with the
same results. tests/fhir/test_xml_native.py checks that both give the same answers.

Writing has a compiled fast path, ``_xmlwrite.pyx`` (Cython; setup.py builds it when a C compiler is
there, else it is absent and :mod:`xml_write` writes alone): it walks the dicts and lists with the C API
(``PyDict_Next``, no Python call per element), looks each key up in per-context tables made once from
:mod:`xml_tables` (an identity cache first: JSON parsers share one str object per distinct key), orders the
properties by definition order, and writes UTF-8 straight into a growing C buffer, escaping ``value``
attributes as :mod:`xml_write` does. It writes the common valid case only (the narrative through the same
Python helpers); for anything else it returns None and :func:`json_to_xml` runs :mod:`xml_write` on the whole
resource, so the output is the same bytes either way and every error is the Python writer's.
tests/fhir/test_xml_native_write.py checks that both write the same.

Why lxml and not ``fhir.resources``: the latter mishandles element ids in XML, drops decimal trailing zeros
and rewrites timestamps (see docs/DESIGN.md). The conversion is written here over :mod:`r4model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from escape_fhir.errors import Issue
from escape_fhir.fhir.xml_parse import FHIR_NS, XHTML_NS, check_depth_of, parse_div, parse_xml, parser
from escape_fhir.fhir.xml_read import XmlReader
from escape_fhir.fhir.xml_write import write

#: The compiled reader's entry point (``_xmlread.read``: the resource, or None to hand the document back).
native_read: Callable[[etree._Element], dict[str, Any] | None] | None
try:
    from escape_fhir.fhir._xmlread import read as native_read
except ImportError:  # not built (no compiler, ESCAPE_FHIR_PURE=1): the Python reader alone
    native_read = None

#: The compiled writer's entry point (``_xmlwrite.write``: the XML bytes, or None to hand the resource back).
native_write: Callable[[dict[str, Any], bool], bytes | None] | None
try:
    from escape_fhir.fhir._xmlwrite import write as native_write
except ImportError:  # not built (no compiler, ESCAPE_FHIR_PURE=1): the Python writer alone
    native_write = None

__all__ = ["FHIR_NS", "XHTML_NS", "json_to_xml", "xml_to_json"]

# The names other modules and tests have used for the safe parser and the narrative parser.
_parser = parser
_parse_div = parse_div


def xml_to_json(data: bytes, issues: list[Issue] | None = None) -> dict[str, Any]:
    """Read a FHIR XML resource into FHIR JSON form (a dict); FhirFormatError with a location if it cannot.

    With ``issues`` (validation), an element or attribute FHIR does not define, and each element out of the
    definition order, is an error issue added there instead: the unknown one is skipped, the misplaced one
    read. Without it, an unknown element stops the read and order is not checked (module :mod:`xml_read`).

    The compiled reader reads the document when it can (it then has nothing to report: the issues stay as
    the Python reader would leave them, empty); otherwise, or when it is not built, :class:`XmlReader`.
    """
    if native_read is None:
        return XmlReader(issues).resource(parse_xml(data), "")
    # The compiled reader bounds the depth itself (it declines a document that may be too deep), so the
    # depth check, a query over the whole tree, is made only when the Python reader reads.
    root = parse_xml(data, check_depth=False)
    found = native_read(root)
    if found is not None:
        return found
    check_depth_of(root, data.count(b"<"))
    return XmlReader(issues).resource(root, "")


def json_to_xml(resource: dict[str, Any], *, pretty: bool = False) -> bytes:
    """Write a FHIR JSON resource (a dict) as FHIR XML bytes (UTF-8, with an XML declaration).

    The compiled writer (:mod:`escape_fhir.fhir._xmlwrite`, when built) writes the common valid case; it
    returns None for anything else, and the Python writer (:func:`xml_write.write`, the reference: same
    bytes) then writes the resource or raises the FhirFormatError."""
    if native_write is not None:
        out = native_write(resource, pretty)
        if out is not None:
            return out
    return write(resource, pretty=pretty)
