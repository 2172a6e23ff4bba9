"""FHIR JSON form (dicts) -> FHIR R4 XML text, written as a string in one pass, elements in definition order.

The representation rules are those of :mod:`xml_read`, the other way round. Text is built directly rather
than through an lxml tree: the tree costs a Python call per element and attribute and then a serialisation
pass; here each element is one formatted string. Attribute values are escaped as libxml2 escapes them
(``& < > "`` and the whitespace characters that attribute normalisation would otherwise turn into spaces,
https://www.w3.org/TR/xml/#AVNormalize), so that reading the text back gives exactly the values written.
The narrative ``div`` is parsed with the safe parser (it must be well-formed XHTML) and written as lxml
serialises it.

This is the reference writer. :func:`escape_fhir.fhir.xmlio.json_to_xml` first tries the compiled fast path
(``_xmlwrite.pyx``, Cython, built by setup.py when it can be), which walks the same dicts with the C API,
orders each object's properties by the same :mod:`xml_tables` slots and writes the same bytes into a C
buffer; for anything unusual (an unknown key, a wrong type, ``null``, a character to refuse...) it hands the
whole resource back and this module writes it or raises the error. A change to the output here must be made
there too: tests/fhir/test_xml_native_write.py compares the two on every resource of the repository and on
generated ones.
"""

from __future__ import annotations

import re
from decimal import Decimal
from operator import attrgetter
from typing import Any

from lxml import etree

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.xml_parse import FHIR_NS, json_type, parse_div, xml_safe
from escape_fhir.fhir.xml_read import check_resource_type
from escape_fhir.fhir.xml_tables import ATTRIBUTE, COMPLEX, PRIMITIVE, RESOURCE, Slot, table

__all__ = ["write"]

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_TO_ESCAPE = re.compile('[&<>"\n\r\t]')
_ORDER = attrgetter("order")


def write(resource: dict[str, Any], *, pretty: bool = False) -> bytes:
    """A FHIR JSON resource as FHIR XML bytes (UTF-8, with an XML declaration); FhirFormatError if it is not."""
    writer = _Writer(pretty)
    writer.resource(resource, "", 0, root=True)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n" + "".join(writer.out)).encode("utf-8")


#: What a string value needs before it can be written as is: an XML escape, or a check that refuses it.
_SPECIAL = re.compile('[&<>"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]')


def _plain_text(slot: Slot, value: Any) -> str | None:
    """The ``value`` attribute text of the common primitives (a string needing no escape, a boolean, an
    integer of a number type), or None: then :func:`primitive_text` decides, or says what is wrong."""
    cls = value.__class__
    if cls is str:
        if slot.json == "string" and _SPECIAL.search(value) is None:
            return value  # type: ignore[no-any-return]
    elif cls is bool:
        if slot.json == "boolean":
            return "true" if value else "false"
    elif cls is int and slot.json == "number":
        return str(value)
    return None


def _escape(text: str) -> str:
    if _TO_ESCAPE.search(text) is None:
        return text
    return _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], text)


class _Writer:
    def __init__(self, pretty: bool) -> None:
        self.out: list[str] = []
        self.pretty = pretty

    def pad(self, level: int, *, closing: bool = False) -> None:
        """Pretty printing puts each FHIR element on its own line; narrative whitespace is content, left alone.
        The root's start tag follows the XML declaration's line; its end tag has a line of its own."""
        if self.pretty and (level or closing):
            self.out.append("\n" + "  " * level)

    def resource(self, obj: Any, location: str, level: int, expected: str = "Resource", *, root: bool = False) -> None:
        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        loc = location or (rtype if isinstance(rtype, str) else "")
        if not isinstance(rtype, str):
            raise FhirFormatError("a resource must be an object with a string resourceType", loc)
        check_resource_type(rtype, expected, loc)
        head = f'{rtype} xmlns="{FHIR_NS}"' if root else rtype
        self.element(rtype, head, obj, table((rtype, rtype)), loc, level, is_resource=True)

    def ordered(self, obj: Any, slots: dict[str, Slot], loc: str, is_resource: bool) -> tuple[list[Slot], bool]:
        """The slots of ``obj``'s properties in definition order, refusing what the context does not define,
        and whether any ``_name`` (a primitive's id and extensions) is present.

        One pass in the properties' own order; the sort is only needed when they are not already in
        definition order (JSON written by FHIR tools, ours included, usually is)."""
        if not isinstance(obj, dict):
            raise FhirFormatError(f"expected an object, not {json_type(obj)}", loc)
        found: list[Slot] = []
        choices: dict[str, str] | None = None
        underscored = False
        in_order = True
        last = -1
        for key in obj:
            slot = slots.get(key)
            if slot is None:
                if key == "resourceType" and is_resource:
                    continue
                if key[:1] == "_":
                    slot = slots.get(key[1:])
                if slot is None or slot.kind != PRIMITIVE:
                    raise FhirFormatError(f"unknown element {key}", f"{loc}.{key}")
                underscored = True
                if slot.name in obj:
                    continue  # written with its value
            if slot.choice:
                if choices is None:
                    choices = {}
                if choices.setdefault(slot.choice, slot.name) != slot.name:
                    raise FhirFormatError(f"only one of {slot.choice_base} is allowed", f"{loc}.{key}")
            order = slot.order
            if order < last:
                in_order = False
            last = order
            found.append(slot)
        if not in_order:
            found.sort(key=_ORDER)
        return found, underscored

    def element(
        self,
        tag: str,
        head: str,
        obj: Any,
        slots: dict[str, Slot],
        loc: str,
        level: int,
        *,
        is_resource: bool = False,
        value: tuple[Slot, Any] | None = None,
    ) -> None:
        """``<head attributes>children</tag>`` (or ``<head attributes/>``): the properties of ``obj``.

        The common cases are written here without a call per element: a primitive ``<name value=".."/>``
        whose value needs no escape, and a complex element (or an array of them) with no ``null``, which
        recurses directly. Everything else goes through :meth:`group`, which also says what is wrong."""
        ordered, underscored = self.ordered(obj, slots, loc, is_resource)
        out = self.out
        pretty = self.pretty
        if pretty:
            self.pad(level)
        start = len(out)
        out.append("")
        attributes = []
        pad = "\n" + "  " * (level + 1) if pretty else ""
        for slot in ordered:
            name = slot.name
            kind = slot.kind
            child = obj.get(name)
            if kind == COMPLEX:  # no _name for a complex element (refused by ordered)
                cls = child.__class__
                if cls is dict and not slot.array:
                    assert slot.context is not None
                    self.element(name, name, child, table(slot.context), f"{loc}.{name}", level + 1)
                    continue
                if cls is list and slot.array and all(v.__class__ is dict for v in child):
                    assert slot.context is not None
                    children = table(slot.context)
                    for i, v in enumerate(child):
                        self.element(name, name, v, children, f"{loc}.{name}[{i}]", level + 1)
                    continue
                self.group(slot, child, None, f"{loc}.{name}", level + 1)
                continue
            extra = obj.get("_" + name) if underscored else None
            if kind == PRIMITIVE and extra is None and child is not None:
                if not slot.array:
                    if child.__class__ is str and slot.json == "string" and _SPECIAL.search(child) is None:
                        out.append(f'{pad}<{name} value="{child}"/>')
                        continue
                    text = _plain_text(slot, child)
                    if text is not None:
                        out.append(f'{pad}<{name} value="{text}"/>')
                        continue
                elif child.__class__ is list:
                    texts = [_plain_text(slot, v) for v in child]
                    if None not in texts:
                        out.extend(f'{pad}<{name} value="{t}"/>' for t in texts)
                        continue
            if kind == ATTRIBUTE:
                text = primitive_text(slot, child, f"{loc}.{name}")
                attributes.append(f' {name}="{_escape(text)}"')
            else:
                self.group(slot, child, extra, f"{loc}.{name}", level + 1)
        if value is not None:
            attributes.append(f' value="{_escape(primitive_text(value[0], value[1], loc))}"')
        if len(out) == start + 1:
            out[start] = f"<{head}{''.join(attributes)}/>"
            return
        out[start] = f"<{head}{''.join(attributes)}>"
        if pretty:
            self.pad(level, closing=True)
        out.append(f"</{tag}>")

    def group(self, slot: Slot, value: Any, extra: Any, loc: str, level: int) -> None:
        if not slot.array:
            self.item(slot, value, extra, loc, level)
            return
        for what, v in (("", value), ("_", extra)):
            if v is not None and not isinstance(v, list):
                raise FhirFormatError(f"{what}{slot.name} must be an array", loc)
        values, extras = value or [], extra or []
        if value is not None and extra is not None and len(values) != len(extras):
            raise FhirFormatError(f"{slot.name} and _{slot.name} must have the same length", loc)
        for i in range(max(len(values), len(extras))):
            self.item(slot, values[i] if values else None, extras[i] if extras else None, f"{loc}[{i}]", level)

    def item(self, slot: Slot, value: Any, extra: Any, loc: str, level: int) -> None:
        kind = slot.kind
        if kind == PRIMITIVE:
            self.primitive(slot, value, extra, loc, level)
            return
        if value is None:
            raise FhirFormatError("null is not allowed here", loc)
        if kind == COMPLEX:
            assert slot.context is not None
            self.element(slot.name, slot.name, value, table(slot.context), loc, level)
        elif kind == RESOURCE:
            self.pad(level)
            self.out.append(f"<{slot.name}>")
            self.resource(value, loc, level + 1, slot.type_code)
            self.pad(level, closing=True)
            self.out.append(f"</{slot.name}>")
        else:
            div = parse_div(value, loc)
            self.pad(level)
            self.out.append(etree.tostring(div, encoding="unicode"))

    def primitive(self, slot: Slot, value: Any, extra: Any, loc: str, level: int) -> None:
        """``<name id=".." value=".."><extension/></name>`` (https://hl7.org/fhir/R4/xml.html#1.17.1)."""
        if extra is None:
            if value is None:
                raise FhirFormatError("null is not allowed here", loc)
            self.pad(level)
            self.out.append(f'<{slot.name} value="{_escape(primitive_text(slot, value, loc))}"/>')
            return
        if isinstance(extra, dict) and "value" in extra:
            raise FhirFormatError("unknown element value", f"{loc}.value")
        assert slot.context is not None
        own = (slot, value) if value is not None else None
        self.element(slot.name, slot.name, extra, table(slot.context), loc, level, value=own)


def primitive_text(slot: Slot, value: Any, loc: str) -> str:
    """The XML ``value`` text of a JSON primitive, checking its JSON type against the FHIR type."""
    kind, type_code = slot.json, slot.type_code
    if kind == "string" and isinstance(value, str):
        if not xml_safe(value):
            raise FhirFormatError("string contains characters not allowed in XML", loc)
        return value
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "number" and isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        if type_code != "decimal" and not isinstance(value, int):
            raise FhirFormatError(f"{type_code} must be a whole number, not {value}", loc)
        return str(value)
    raise FhirFormatError(f"{type_code} must be a JSON {kind}, not {json_type(value)}", loc)
