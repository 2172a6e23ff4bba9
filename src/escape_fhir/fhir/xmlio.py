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

Safety: documents with a DOCTYPE are refused before lxml sees them, so no entity can be declared, let alone
expanded or fetched; the parser itself also resolves no entities, loads no DTD and reaches no network.
Comments and processing instructions are dropped. ``huge_tree`` lifts libxml2's fixed depth of 256 so that
the depth limit is the same as JSON's (``bounds.MAX_DEPTH``, checked on the tree without recursion); what
else it lifts (text node and name sizes) stays bounded by the body size limit, and with no DOCTYPE there
are no entities to amplify.

Why lxml and not ``fhir.resources``: the latter mishandles element ids in XML, drops decimal trailing zeros
and rewrites timestamps (see docs/DESIGN.md). The conversion is written here over :mod:`r4model`.
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from typing import Any

from lxml import etree

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import bounds
from escape_fhir.fhir.jsonio import decimal_from_text
from escape_fhir.fhir.r4model import ChildRef, R4Model, model

__all__ = ["FHIR_NS", "XHTML_NS", "json_to_xml", "xml_to_json"]

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_F = "{" + FHIR_NS + "}"
_DIV = "{" + XHTML_NS + "}div"
# lxml declares a default namespace with the key None; the stubs only allow str keys.
_FHIR_DEFAULT: Any = {None: FHIR_NS}
_XHTML_DEFAULT: Any = {None: XHTML_NS}

# ---- safe parsing -------------------------------------------------------------------------------------------

_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8_BOM = b"\xef\xbb\xbf"
_local = threading.local()


def _parser() -> etree.XMLParser:
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
    while (item := _PROLOG_ITEM.match(data, pos)) is not None:
        pos = item.end()
    if data.startswith(b"<!", pos):
        raise FhirFormatError("DOCTYPE/entity declarations are not allowed in FHIR XML")


def _parse_xml(data: bytes) -> etree._Element:
    _check_prolog(data)
    bounds.check_size(data.count(b"<") // 2, "XML elements")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as e:
        raise FhirFormatError(f"malformed XML: {e.msg}") from e
    if root.getroottree().docinfo.internalDTD is not None:  # unreachable after _check_prolog; kept as a guard
        raise FhirFormatError("DOCTYPE/entity declarations are not allowed in FHIR XML")
    # Fewer start tags than the limit cannot nest deeper than it; otherwise measure, without recursion.
    if data.count(b"<") > bounds.MAX_DEPTH and _xml_depth(root) > bounds.MAX_DEPTH:
        raise bounds.too_deep()
    bounds.ensure_recursion()
    return root


def _xml_depth(root: etree._Element) -> int:
    """Nesting of elements that have child elements (the root is 1), stopping once past the limit.

    Elements without children are primitives (``<valueString value=".."/>``), which are no object in JSON,
    so the same resource has the same depth in both formats."""
    depth = deepest = 0
    counted: list[int] = []
    for event, elem in etree.iterwalk(root, events=("start", "end")):
        if event == "start":
            counted.append(1 if len(elem) else 0)
            depth += counted[-1]
            deepest = max(deepest, depth)
            if deepest > bounds.MAX_DEPTH:
                break
        else:
            depth -= counted.pop()
    return deepest


def _split(tag: str) -> tuple[str, str]:
    ns, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return ns, local


# ---- XML -> JSON ----------------------------------------------------------------------------------------------


def xml_to_json(data: bytes) -> dict[str, Any]:
    """Read a FHIR XML resource into FHIR JSON form (a dict); FhirFormatError with a location if it cannot."""
    return _XmlReader(model()).resource(_parse_xml(data), "")


class _XmlReader:
    def __init__(self, m: R4Model) -> None:
        self.m = m

    def resource(self, elem: etree._Element, location: str, expected: str = "Resource") -> dict[str, Any]:
        ns, rtype = _split(elem.tag)
        loc = location or rtype
        if ns != FHIR_NS:
            raise FhirFormatError(f"element {rtype} is not in the FHIR namespace {FHIR_NS}", loc)
        _check_resource_type(self.m, rtype, expected, loc)
        out: dict[str, Any] = {"resourceType": rtype}
        self.fill(elem, (rtype, rtype), out, loc)
        return out

    def fill(self, elem: etree._Element, context: tuple[str, str], out: dict[str, Any], loc: str) -> None:
        """Read the attributes and child elements of ``elem`` into ``out`` (JSON keys)."""
        self.attributes(elem, context, out, loc)
        _no_text(elem.text, loc)
        groups: dict[str, list[etree._Element]] = {}
        for child in elem:
            if not isinstance(child.tag, str):  # entity reference nodes cannot occur; be safe
                continue
            _no_text(child.tail, loc)
            ns, name = _split(child.tag)
            if ns != FHIR_NS and child.tag != _DIV:  # Narrative.div is XHTML; _read_div checks where it is
                raise FhirFormatError(f"element {name} is not in the FHIR namespace {FHIR_NS}", f"{loc}.{name}")
            groups.setdefault(name, []).append(child)
        seen_choices: dict[str, str] = {}
        for name, elems in groups.items():
            ref = self.m.child(context[0], context[1], name)
            if ref is None or ref.element.is_xml_attribute:
                raise FhirFormatError(f"unknown element {name}", f"{loc}.{name}")
            if ref.element.is_choice and seen_choices.setdefault(ref.element.path, name) != name:
                raise FhirFormatError(f"only one of {ref.element.name} is allowed", f"{loc}.{name}")
            if len(elems) > 1 and not ref.element.is_array:
                raise FhirFormatError(f"element {name} repeats but its maximum is 1", f"{loc}.{name}")
            self.group(ref, elems, out, loc)

    def attributes(self, elem: etree._Element, context: tuple[str, str], out: dict[str, Any], loc: str) -> None:
        for key, value in elem.attrib.items():
            ns, name = _split(str(key))
            if ns == _XSI_NS:  # xsi:schemaLocation and friends carry nothing for FHIR
                continue
            ref = self.m.child(context[0], context[1], name) if not ns else None
            if ref is None or not ref.element.is_xml_attribute:
                raise FhirFormatError(f"unknown attribute {name}", f"{loc}.{name}" if name != "value" else loc)
            out[name] = value

    def group(self, ref: ChildRef, elems: list[etree._Element], out: dict[str, Any], loc: str) -> None:
        """Read the elements named ``ref.name`` into ``out[name]`` (and ``out['_' + name]`` for primitives)."""
        array = ref.element.is_array
        locs = [f"{loc}.{ref.name}[{i}]" if array else f"{loc}.{ref.name}" for i in range(len(elems))]
        if ref.kind == "primitive":
            pairs = [self.primitive(ref, e, lc) for e, lc in zip(elems, locs, strict=True)]
            values, extras = [p[0] for p in pairs], [p[1] for p in pairs]
            if any(v is not None for v in values):
                out[ref.name] = values if array else values[0]
            if any(x is not None for x in extras):
                out["_" + ref.name] = extras if array else extras[0]
            return
        items = [self.item(ref, e, lc) for e, lc in zip(elems, locs, strict=True)]
        out[ref.name] = items if array else items[0]

    def item(self, ref: ChildRef, elem: etree._Element, loc: str) -> Any:
        if ref.kind == "xhtml":
            return _read_div(elem, loc)
        if ref.kind == "resource":
            return self.nested_resource(elem, loc, ref.type_code)
        assert ref.context is not None
        out: dict[str, Any] = {}
        self.fill(elem, ref.context, out, loc)
        return out

    def nested_resource(self, elem: etree._Element, loc: str, expected: str) -> dict[str, Any]:
        """``<resource><Patient>...</Patient></resource>`` (https://hl7.org/fhir/R4/xml.html#resource-in-resource)."""
        if elem.attrib:
            raise FhirFormatError("a resource container has no attributes", loc)
        _no_text(elem.text, loc)
        children = [c for c in elem if isinstance(c.tag, str)]
        if len(children) != 1:
            raise FhirFormatError("expected exactly one resource element", loc)
        _no_text(children[0].tail, loc)
        return self.resource(children[0], loc, expected)

    def primitive(self, ref: ChildRef, elem: etree._Element, loc: str) -> tuple[Any, dict[str, Any] | None]:
        """A primitive element: its typed value and its ``_name`` part (id, extensions) or None."""
        assert ref.context is not None
        extra: dict[str, Any] = {}
        self.fill(elem, ref.context, extra, loc)
        text = extra.pop("value", None)
        if text is None and not extra:
            raise FhirFormatError(f"element {ref.name} has no value and no extensions", loc)
        value = None if text is None else _typed_value(self.m, ref.type_code, text, loc)
        return value, (extra or None)


def _check_resource_type(m: R4Model, rtype: str, expected: str, loc: str) -> None:
    if not m.is_resource_type(rtype):
        raise FhirFormatError(f"unknown resource type {rtype}", loc)
    if expected not in ("Resource", "DomainResource", rtype):
        raise FhirFormatError(f"expected a {expected} resource, not {rtype}", loc)


def _no_text(text: str | None, loc: str) -> None:
    if text is not None and not text.isspace():
        raise FhirFormatError(f"text is not allowed here: {text.strip()[:40]!r}", loc)


def _typed_value(m: R4Model, type_code: str, text: str, loc: str) -> Any:
    """The JSON value of a primitive's XML ``value`` attribute (https://hl7.org/fhir/R4/json.html#primitive)."""
    info = m.primitive(type_code)
    if info is None or info.json == "string":
        return text
    if not info.matches(text):
        raise FhirFormatError(f"{text!r} is not a valid {type_code}", loc)
    if info.json == "boolean":
        return text == "true"
    try:
        return decimal_from_text(text) if type_code == "decimal" else int(text)
    except ValueError as e:  # beyond the bounds of numbers (fhir/bounds.py) or 4300+ digits
        raise FhirFormatError(str(e), loc) from None


def _read_div(elem: etree._Element, loc: str) -> str:
    """Narrative.div as a string with its XHTML namespace declared (https://hl7.org/fhir/R4/json.html#xhtml)."""
    if elem.tag != _DIV:
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


# ---- JSON -> XML ----------------------------------------------------------------------------------------------


def json_to_xml(resource: dict[str, Any], *, pretty: bool = False) -> bytes:
    """Write a FHIR JSON resource (a dict) as FHIR XML bytes (UTF-8, with an XML declaration)."""
    root = _XmlWriter(model()).resource(resource, "", None)
    if pretty:
        _indent(root, 0)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


class _XmlWriter:
    def __init__(self, m: R4Model) -> None:
        self.m = m

    def resource(
        self, obj: Any, location: str, parent: etree._Element | None, expected: str = "Resource"
    ) -> etree._Element:
        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        loc = location or (rtype if isinstance(rtype, str) else "")
        if not isinstance(rtype, str):
            raise FhirFormatError("a resource must be an object with a string resourceType", loc)
        _check_resource_type(self.m, rtype, expected, loc)
        if parent is None:
            elem = etree.Element(_F + rtype, nsmap=_FHIR_DEFAULT)
        else:
            elem = etree.SubElement(parent, _F + rtype)
        self.fill(elem, obj, (rtype, rtype), loc, is_resource=True)
        return elem

    def fill(
        self, elem: etree._Element, obj: Any, context: tuple[str, str], loc: str, *, is_resource: bool = False
    ) -> None:
        """Write the JSON properties of ``obj`` as attributes and child elements, in definition order."""
        if not isinstance(obj, dict):
            raise FhirFormatError(f"expected an object, not {_json_type(obj)}", loc)
        refs: dict[str, ChildRef] = {}
        for key in obj:
            if key == "resourceType" and is_resource:
                continue
            name = key[1:] if key.startswith("_") else key
            ref = self.m.child(context[0], context[1], name)
            if ref is None or (key.startswith("_") and (ref.kind != "primitive" or ref.element.is_xml_attribute)):
                raise FhirFormatError(f"unknown element {key}", f"{loc}.{key}")
            if ref.element.is_choice and any(r.element is ref.element and n != name for n, r in refs.items()):
                raise FhirFormatError(f"only one of {ref.element.name} is allowed", f"{loc}.{key}")
            refs[name] = ref
        for name, ref in sorted(refs.items(), key=lambda item: item[1].order):
            if ref.element.is_xml_attribute:
                elem.set(name, _primitive_text(self.m, ref.type_code, obj.get(name), f"{loc}.{name}"))
            else:
                self.group(elem, ref, obj.get(name), obj.get("_" + name), f"{loc}.{name}")

    def group(self, parent: etree._Element, ref: ChildRef, value: Any, extra: Any, loc: str) -> None:
        if not ref.element.is_array:
            self.item(parent, ref, value, extra, loc)
            return
        for what, v in (("", value), ("_", extra)):
            if v is not None and not isinstance(v, list):
                raise FhirFormatError(f"{what}{ref.name} must be an array", loc)
        values, extras = value or [], extra or []
        if value is not None and extra is not None and len(values) != len(extras):
            raise FhirFormatError(f"{ref.name} and _{ref.name} must have the same length", loc)
        for i in range(max(len(values), len(extras))):
            v = values[i] if values else None
            x = extras[i] if extras else None
            self.item(parent, ref, v, x, f"{loc}[{i}]")

    def item(self, parent: etree._Element, ref: ChildRef, value: Any, extra: Any, loc: str) -> None:
        if ref.kind == "primitive":
            self.primitive(parent, ref, value, extra, loc)
            return
        if value is None:
            raise FhirFormatError("null is not allowed here", loc)
        if ref.kind == "xhtml":
            parent.append(_parse_div(value, loc))
            return
        elem = etree.SubElement(parent, _F + ref.name)
        if ref.kind == "resource":
            self.resource(value, loc, elem, ref.type_code)
            return
        assert ref.context is not None
        self.fill(elem, value, ref.context, loc)

    def primitive(self, parent: etree._Element, ref: ChildRef, value: Any, extra: Any, loc: str) -> None:
        """``<name id=".." value=".."><extension/></name>`` (https://hl7.org/fhir/R4/xml.html#1.17.1)."""
        if value is None and extra is None:
            raise FhirFormatError("null is not allowed here", loc)
        assert ref.context is not None
        elem = etree.SubElement(parent, _F + ref.name)
        if extra is not None:
            if isinstance(extra, dict) and "value" in extra:
                raise FhirFormatError("unknown element value", f"{loc}.value")
            self.fill(elem, extra, ref.context, loc)
        if value is not None:
            elem.set("value", _primitive_text(self.m, ref.type_code, value, loc))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _primitive_text(m: R4Model, type_code: str, value: Any, loc: str) -> str:
    """The XML ``value`` text of a JSON primitive, checking its JSON type against the FHIR type."""
    info = m.primitive(type_code)
    kind = info.json if info else "string"
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    whole = type_code != "decimal"
    if kind == "number" and isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        if whole and not isinstance(value, int):
            raise FhirFormatError(f"{type_code} must be a whole number, not {value}", loc)
        return str(value)
    if kind == "string" and isinstance(value, str):
        if not _xml_safe(value):
            raise FhirFormatError("string contains characters not allowed in XML", loc)
        return value
    raise FhirFormatError(f"{type_code} must be a JSON {kind}, not {_json_type(value)}", loc)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_safe(text: str) -> bool:
    return _XML_ILLEGAL.search(text) is None


def _parse_div(value: Any, loc: str) -> etree._Element:
    if not isinstance(value, str):
        raise FhirFormatError(f"div must be a JSON string, not {_json_type(value)}", loc)
    try:
        div = _parse_xml(value.encode("utf-8"))
    except FhirFormatError as e:
        raise FhirFormatError(f"div is not well-formed XHTML: {e}", loc) from e
    if div.tag != _DIV:
        raise FhirFormatError("div must be an XHTML div element in the XHTML namespace", loc)
    return div


def _indent(elem: etree._Element, level: int) -> None:
    """Pretty-print FHIR elements only: whitespace inside the XHTML narrative is content and is left alone."""
    if elem.tag == _DIV or not len(elem):
        return
    pad = "\n" + "  " * (level + 1)
    elem.text = pad
    for child in elem:
        _indent(child, level + 1)
        child.tail = pad
    elem[-1].tail = "\n" + "  " * level
