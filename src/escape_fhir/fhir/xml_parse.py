"""Safe reading of XML bytes for FHIR, and the XHTML narrative's two forms.

Documents with a DOCTYPE are refused before lxml sees them, so no entity can be declared, let alone
expanded or fetched; the parser itself also resolves no entities, loads no DTD and reaches no network.
Comments and processing instructions are dropped. ``huge_tree`` lifts libxml2's fixed depth of 256 so that
the depth limit is the same as JSON's (``bounds.MAX_DEPTH``, checked on the tree without recursion); what
else it lifts (text node and name sizes) stays bounded by the body size limit, and with no DOCTYPE there
are no entities to amplify.

``Narrative.div`` is XHTML in XML and a string holding the serialised ``div`` with its namespace in JSON
(https://hl7.org/fhir/R4/json.html#xhtml): :func:`read_div` and :func:`parse_div` convert between the two.
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from typing import Any

from lxml import etree

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import bounds

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DIV = "{" + XHTML_NS + "}div"
# lxml declares a default namespace with the key None; the stubs only allow str keys.
_XHTML_DEFAULT: Any = {None: XHTML_NS}

_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
# The prolog's items in one match: as many items as follow one another, each the shortest, as a loop over
# _PROLOG_ITEM would take them (nothing follows the repetition, so the regex never backtracks into it).
_PROLOG = re.compile(rb"(?:" + _PROLOG_ITEM.pattern + rb")*", re.DOTALL)
_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8_BOM = b"\xef\xbb\xbf"
_local = threading.local()


def parser() -> etree.XMLParser:
    """One parser per thread (lxml parsers must not be shared between threads)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=True,  # see the module doc: depth is bounded by bounds.MAX_DEPTH instead
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
    return parser


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE (the only place entities can be declared) and anything but UTF-8.

    FHIR XML never has a DOCTYPE (https://hl7.org/fhir/R4/xml.html: "no DTD"), and FHIR content is UTF-8
    (https://hl7.org/fhir/R4/http.html#mime-type). A DOCTYPE can only appear in the prolog, before the
    root element, so scanning the prolog is enough.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:1] == b"\x00" or data[1:2] == b"\x00":
        raise FhirFormatError("FHIR XML must be encoded in UTF-8")
    pos = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    declared = _ENCODING.match(data, pos)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii"):
        raise FhirFormatError(f"FHIR XML must be encoded in UTF-8, not {declared.group(1).decode()}")
    prolog = _PROLOG.match(data, pos)  # always a match, possibly empty
    if data.startswith(b"<!", prolog.end() if prolog is not None else pos):
        raise FhirFormatError("DOCTYPE/entity declarations are not allowed in FHIR XML")


def parse_xml(data: bytes, *, check_depth: bool = True) -> etree._Element:
    """The parsed document (the safe parser), its depth checked unless ``check_depth`` is False: the compiled
    reader bounds the depth itself and leaves the check (:func:`check_depth`) to the Python reader's path."""
    _check_prolog(data)
    tags = 0
    if check_depth or len(data) // 2 > bounds.MAX_CONTAINERS:
        # Each element takes a "<", so a document of at most 2 * MAX_CONTAINERS + 1 bytes is within the size
        # limit without counting: the count (a pass over the document) is made only when it can matter.
        tags = data.count(b"<")  # once: a byte count is a pass over the document
        bounds.check_size(tags // 2, "XML elements")
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError as e:
        raise FhirFormatError(f"malformed XML: {e.msg}") from e
    if root.getroottree().docinfo.internalDTD is not None:  # unreachable after _check_prolog; kept as a guard
        raise FhirFormatError("DOCTYPE/entity declarations are not allowed in FHIR XML")
    if check_depth:
        check_depth_of(root, tags)
    bounds.ensure_recursion()
    return root


def check_depth_of(root: etree._Element, tags: int) -> None:
    """FhirFormatError when an element is nested deeper than ``bounds.MAX_DEPTH`` (``tags``: the count of
    ``<`` in the document). Fewer start tags than the limit cannot nest deeper than it; otherwise measure,
    without recursion."""
    if tags > bounds.MAX_DEPTH and _too_deep(root):
        raise bounds.too_deep()


#: True when some element is nested deeper than the limit: evaluated by libxml2 in one pass, no Python per
#: element. The depth counted is that of elements with child elements (primitives such as
#: ``<valueString value=".."/>`` are no object in JSON, so a resource has the same depth in both formats);
#: the deepest element is always one without children, so that depth exceeds the limit exactly when an
#: element sits at tree level ``MAX_DEPTH + 2`` (the root at level 1).
_TOO_DEEP = etree.XPath("boolean(" + "/*" * (bounds.MAX_DEPTH + 2) + ")")


def _too_deep(root: etree._Element) -> bool:
    return bool(_TOO_DEEP(root))


def split(tag: str) -> tuple[str, str]:
    ns, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return ns, local


def read_div(elem: etree._Element, loc: str) -> str:
    """Narrative.div as a string with its XHTML namespace declared (https://hl7.org/fhir/R4/json.html#xhtml)."""
    if elem.tag != DIV:
        raise FhirFormatError("Narrative.div must be an XHTML div element", loc)
    if elem.prefix is None and elem.nsmap == {None: XHTML_NS}:
        return etree.tostring(elem, encoding="unicode", with_tail=False)
    # lxml would also declare the prefixes in scope (xmlns:xsi, a FHIR prefix...): rebuild without them.
    return _rebuild_default_ns(elem)


def _rebuild_default_ns(elem: etree._Element) -> str:
    """Re-serialise a div that used a prefix or inherited extra namespaces, with XHTML as default namespace."""
    copy = etree.Element(elem.tag, attrib=_attrs(elem), nsmap=_XHTML_DEFAULT)
    _copy_children(elem, copy)
    return etree.tostring(copy, encoding="unicode")


def _attrs(elem: etree._Element) -> dict[str, str]:
    return {str(k): str(v) for k, v in elem.attrib.items()}


def _copy_children(source: etree._Element, target: etree._Element) -> None:
    """Copy content element by element, so that lxml reuses the target's default namespace declaration."""
    target.text = source.text
    for child in source:
        if isinstance(child.tag, str):
            copied = etree.SubElement(target, child.tag, attrib=_attrs(child))
            _copy_children(child, copied)
            copied.tail = child.tail


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> bool:
    return _XML_ILLEGAL.search(text) is None


def parse_div(value: Any, loc: str) -> etree._Element:
    if not isinstance(value, str):
        raise FhirFormatError(f"div must be a JSON string, not {json_type(value)}", loc)
    try:
        div = parse_xml(value.encode("utf-8"))
    except FhirFormatError as e:
        raise FhirFormatError(f"div is not well-formed XHTML: {e}", loc) from e
    if div.tag != DIV:
        raise FhirFormatError("div must be an XHTML div element in the XHTML namespace", loc)
    return div
