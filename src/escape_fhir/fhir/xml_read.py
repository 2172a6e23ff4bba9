"""FHIR R4 XML (an lxml tree) -> FHIR JSON form (dicts), in one pass over the tree.

Rules (https://hl7.org/fhir/R4/xml.html, https://hl7.org/fhir/R4/json.html): primitive values are ``value``
attributes, element ids and ``Extension.url`` are attributes; a primitive's id and extensions go to
``_name`` in JSON, aligned with ``null`` in arrays; nested resources are wrapped in an element named after
their type; arrays follow the element's max cardinality; numbers and booleans follow the primitive type,
decimals kept exact (:mod:`escape_fhir.fhir.jsonio`).

Two modes. Reading content to use it (``issues`` None), anything FHIR does not define stops the read with a
located :class:`FhirFormatError`, and elements out of definition order are accepted (senders' engines do
not always keep it, and nothing is lost by reading them). Reading content to validate it (``issues`` a
list), an unknown element or attribute is reported there and skipped, and so is every element out of the
order R4 XML requires (https://hl7.org/fhir/R4/xml.html: "elements SHALL appear in the order ... defined"),
so that one stray element is one validation error, not an unreadable file.

Speed: each context's children come from a precomputed table (:mod:`xml_tables`) and the common
primitive (one ``value`` attribute, no children) is read without a second call. Most documents do not reach
this reader at all: :func:`escape_fhir.fhir.xmlio.xml_to_json` first tries the compiled fast path
(``_xmlread.pyx``, Cython), which walks libxml2's nodes in C with the same tables and builds the same dicts
(it calls :func:`typed_value`, :func:`check_resource_type` and ``read_div`` from here for the rare cases),
but only for the common, valid case -- every element known, in definition order, no text, no bad value.
Anything else it hands back, and this reader reads the document from the start: it is the one that gives
every error, location and validation issue, and the whole reader where the extension is not built.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from escape_fhir.errors import FhirFormatError, Issue
from escape_fhir.fhir.jsonio import decimal_from_text
from escape_fhir.fhir.r4model import model
from escape_fhir.fhir.xml_parse import DIV, FHIR_NS, XSI_NS, read_div, split
from escape_fhir.fhir.xml_tables import ATTRIBUTE, COMPLEX, PRIMITIVE, RESOURCE, Context, Slot, by_tag, table

__all__ = ["XmlReader"]

_XSI = "{" + XSI_NS + "}"


class XmlReader:
    """Reads one document; ``issues`` (when given) collects what a validator reports instead of stopping.

    FHIR elements hold no text (values are attributes): each element's text and tail are looked at as the
    walk meets them and the first that is not whitespace is refused with its location. (Asking libxml2 first,
    by an XPath query over the whole tree, whether there is any such text cost more than these checks.)"""

    def __init__(self, issues: list[Issue] | None = None) -> None:
        self.issues = issues

    def resource(self, elem: etree._Element, location: str, expected: str = "Resource") -> dict[str, Any]:
        ns, rtype = split(elem.tag)
        loc = location or rtype
        if ns != FHIR_NS:
            raise FhirFormatError(f"element {rtype} is not in the FHIR namespace {FHIR_NS}", loc)
        check_resource_type(rtype, expected, loc)
        out: dict[str, Any] = {"resourceType": rtype}
        self.fill(elem, (rtype, rtype), out, loc)
        return out

    def unknown(self, what: str, name: str, loc: str) -> None:
        """An element or attribute FHIR does not define here: an issue when validating, else an error."""
        if self.issues is None:
            raise FhirFormatError(f"unknown {what} {name}", loc)
        self.issues.append(Issue("error", "structure", f"unknown {what} '{name}'", loc))

    def fill(self, elem: etree._Element, context: Context, out: dict[str, Any], loc: str) -> None:
        """Read the attributes and child elements of ``elem`` (defined at ``context``) into ``out`` (JSON keys)."""
        if elem.attrib:
            self.attributes(elem, table(context), out, loc)
        text = elem.text
        if text is not None and not text.isspace():
            raise _text(text, loc)
        tags = by_tag(context)
        groups: dict[str, list[Any]] = {}  # name -> [slot, element...]
        checking = self.issues is not None
        last: Slot | None = None
        for child in elem:
            tail = child.tail
            if tail is not None and not tail.isspace():
                raise _text(tail, loc)
            tag = child.tag
            slot = tags.get(tag)
            if slot is None:
                if tag.__class__ is not str:  # entity reference nodes cannot occur; be safe
                    continue
                self._not_defined(str(tag), loc)
                continue
            name = slot.name
            group = groups.get(name)
            if checking and last is not None and last is not slot and (slot.order < last.order or group):
                self._out_of_order(slot, last, group, loc)  # reported, and read all the same
            else:
                last = slot
            if group is None:
                groups[name] = [slot, child]
            else:
                group.append(child)
        if groups:
            self.groups(groups, out, loc)

    def _not_defined(self, tag: str, loc: str) -> None:
        """A child element the context does not define: outside the FHIR namespace (an error even when
        validating: it is not FHIR XML), or unknown (an issue when validating)."""
        ns, name = split(tag)
        if ns != FHIR_NS and tag != DIV:
            raise FhirFormatError(f"element {name} is not in the FHIR namespace {FHIR_NS}", f"{loc}.{name}")
        self.unknown("element", name, f"{loc}.{name}")

    def _out_of_order(self, slot: Slot, last: Slot, group: list[Any] | None, loc: str) -> None:
        """``slot`` met after ``last`` although it is defined before it, or again after other elements."""
        assert self.issues is not None
        index = f"[{len(group) - 1 if group else 0}]" if slot.array else ""
        where = f"{loc}.{slot.name}{index}"
        text = f"element '{slot.name}' is out of order (found after {last.name}): "
        text += "FHIR XML requires the order of the definition"
        self.issues.append(Issue("error", "structure", text, where))

    def groups(self, groups: dict[str, list[Any]], out: dict[str, Any], loc: str) -> None:
        """Each group of same-named children into ``out``. The common single primitive ``<name value=".."/>``
        and complex elements are read here, without a call per element (this is the reader's inner loop)."""
        seen_choices: dict[str, str] | None = None
        for name, group in groups.items():
            slot: Slot = group[0]
            if slot.choice:
                if seen_choices is None:
                    seen_choices = {}
                if seen_choices.setdefault(slot.choice, name) != name:
                    raise FhirFormatError(f"only one of {slot.choice_base} is allowed", f"{loc}.{name}")
            count = len(group) - 1
            if count > 1 and not slot.array:
                raise FhirFormatError(f"element {name} repeats but its maximum is 1", f"{loc}.{name}")
            kind = slot.kind
            if kind == PRIMITIVE:
                if count == 1 and not slot.array:
                    elem = group[1]
                    attrs = elem.items()
                    if len(attrs) == 1 and attrs[0][0] == "value" and not len(elem):
                        text = elem.text
                        if text is None or text.isspace():
                            value = str(attrs[0][1])  # always str from a parse (the stubs allow bytes)
                            out[name] = value if slot.json == "string" else typed_value(slot, value, f"{loc}.{name}")
                            continue
                self.primitives(slot, group[1:], out, loc)
            elif kind == COMPLEX:
                assert slot.context is not None
                context = slot.context
                if slot.array:
                    items = out[name] = []
                    for i in range(count):
                        item: dict[str, Any] = {}
                        self.fill(group[i + 1], context, item, f"{loc}.{name}[{i}]")
                        items.append(item)
                else:
                    item = out[name] = {}
                    self.fill(group[1], context, item, f"{loc}.{name}")
            elif slot.array:
                out[name] = [self.item(slot, e, f"{loc}.{name}[{i}]") for i, e in enumerate(group[1:])]
            else:
                out[name] = self.item(slot, group[1], f"{loc}.{name}")

    def primitives(self, slot: Slot, elems: list[etree._Element], out: dict[str, Any], loc: str) -> None:
        """The elements named ``slot.name`` into ``out[name]`` and ``out['_' + name]`` (id, extensions)."""
        values: list[Any] = []
        extras: list[Any] = []
        name, array, plain = slot.name, slot.array, slot.json == "string"
        for i, elem in enumerate(elems):
            attrs = elem.items()
            if len(attrs) == 1 and attrs[0][0] == "value" and not len(elem):
                text = elem.text
                if text is None or text.isspace():  # the common case, <name value=".."/>: no location needed
                    value = str(attrs[0][1])  # always str from a parse (the stubs allow bytes)
                    values.append(value if plain else typed_value(slot, value, _at(loc, name, array, i)))
                    extras.append(None)
                    continue
            where = _at(loc, name, array, i)
            extra: dict[str, Any] = {}
            assert slot.context is not None
            self.fill(elem, slot.context, extra, where)
            value = extra.pop("value", None)
            if value is None and not extra:
                raise FhirFormatError(f"element {name} has no value and no extensions", where)
            values.append(None if value is None else typed_value(slot, value, where))
            extras.append(extra or None)
        if array:
            if values.count(None) != len(values):
                out[name] = values
            if extras.count(None) != len(extras):
                out["_" + name] = extras
            return
        if values[0] is not None:
            out[name] = values[0]
        if extras[0] is not None:
            out["_" + name] = extras[0]

    def attributes(self, elem: etree._Element, slots: dict[str, Slot], out: dict[str, Any], loc: str) -> None:
        for key, value in elem.attrib.items():
            name = str(key)
            if name.startswith("{"):
                if name.startswith(_XSI):  # xsi:schemaLocation and friends carry nothing for FHIR
                    continue
                name = split(name)[1]
                slot = None
            else:
                slot = slots.get(name)
            if slot is None or slot.kind != ATTRIBUTE:
                self.unknown("attribute", name, f"{loc}.{name}" if name != "value" else loc)
                continue
            out[name] = value

    def item(self, slot: Slot, elem: etree._Element, loc: str) -> Any:
        if slot.kind == COMPLEX:
            out: dict[str, Any] = {}
            assert slot.context is not None
            self.fill(elem, slot.context, out, loc)
            return out
        if slot.kind == RESOURCE:
            return self.nested_resource(elem, loc, slot.type_code)
        return read_div(elem, loc)

    def nested_resource(self, elem: etree._Element, loc: str, expected: str) -> dict[str, Any]:
        """``<resource><Patient>...</Patient></resource>`` (https://hl7.org/fhir/R4/xml.html#resource-in-resource)."""
        if elem.attrib:
            raise FhirFormatError("a resource container has no attributes", loc)
        if elem.text is not None and not elem.text.isspace():
            raise _text(elem.text, loc)
        children = [c for c in elem if isinstance(c.tag, str)]
        if len(children) != 1:
            raise FhirFormatError("expected exactly one resource element", loc)
        tail = children[0].tail
        if tail is not None and not tail.isspace():
            raise _text(tail, loc)
        return self.resource(children[0], loc, expected)


def _at(loc: str, name: str, array: bool, index: int) -> str:
    return f"{loc}.{name}[{index}]" if array else f"{loc}.{name}"


def check_resource_type(rtype: str, expected: str, loc: str) -> None:
    if not model().is_resource_type(rtype):
        raise FhirFormatError(f"unknown resource type {rtype}", loc)
    if expected not in ("Resource", "DomainResource", rtype):
        raise FhirFormatError(f"expected a {expected} resource, not {rtype}", loc)


def _text(text: str, loc: str) -> FhirFormatError:
    return FhirFormatError(f"text is not allowed here: {text.strip()[:40]!r}", loc)


def typed_value(slot: Slot, text: str, loc: str) -> Any:
    """The JSON value of a primitive's XML ``value`` attribute (https://hl7.org/fhir/R4/json.html#primitive)."""
    if slot.json == "string":
        return text
    if slot.pattern is not None and slot.pattern.fullmatch(text) is None:
        raise FhirFormatError(f"{text!r} is not a valid {slot.type_code}", loc)
    if slot.json == "boolean":
        return text == "true"
    try:
        return decimal_from_text(text) if slot.type_code == "decimal" else int(text)
    except ValueError as e:  # beyond the bounds of numbers (fhir/bounds.py) or 4300+ digits
        raise FhirFormatError(str(e), loc) from None
