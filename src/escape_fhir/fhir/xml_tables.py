"""Per-context tables of the child elements FHIR defines, shared by the XML reader and writer.

The R4 model (:mod:`r4model`) resolves one child name at a time; reading or writing XML asks that question
for every element, so each context (``("Patient", "Patient")``, ``("HumanName", "HumanName")``, a backbone
element's path...) gets one dict from instance name (``given``, ``valueQuantity``) to a :class:`Slot`
holding all the reader and writer need, built on first use and kept for the life of the process.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from escape_fhir.fhir.r4model import model

__all__ = ["ATTRIBUTE", "COMPLEX", "PRIMITIVE", "RESOURCE", "XHTML", "Context", "Slot", "by_tag", "table"]

PRIMITIVE, COMPLEX, RESOURCE, XHTML, ATTRIBUTE = range(5)
_KINDS = {"primitive": PRIMITIVE, "complex": COMPLEX, "resource": RESOURCE, "xhtml": XHTML}
Context = tuple[str, str]


class Slot(NamedTuple):
    """One child element as named in an instance.

    ``order`` is the element's position in the definition (the XML order); ``kind`` one of the module's
    constants (``ATTRIBUTE``: an element id or ``Extension.url``, written as an XML attribute); ``choice`` the
    definition path of a choice element (``Observation.value[x]``), else ""; ``json`` the JSON form of a
    primitive (``string``, ``number``, ``boolean``), ``pattern`` its value regex when it has one.
    """

    name: str
    order: int
    kind: int
    array: bool
    type_code: str
    context: Context | None
    choice: str
    json: str
    pattern: re.Pattern[str] | None
    choice_base: str


_TABLES: dict[Context, dict[str, Slot]] = {}
_TAGS: dict[Context, dict[str, Slot]] = {}
_FHIR = "{http://hl7.org/fhir}"
_DIV = "{http://www.w3.org/1999/xhtml}div"


def table(context: Context) -> dict[str, Slot]:
    """The children a context defines, by instance name (every typed name of a choice element)."""
    found = _TABLES.get(context)
    if found is None:
        found = _TABLES[context] = _build(context)
    return found


def by_tag(context: Context) -> dict[str, Slot]:
    """The child elements a context defines, by lxml tag (``{http://hl7.org/fhir}given``; the narrative's
    ``{http://www.w3.org/1999/xhtml}div``): the reader's one look-up per element. No attributes. A ``div``
    in the FHIR namespace is found too, so that the reader can say it must be XHTML."""
    found = _TAGS.get(context)
    if found is None:
        found = {_FHIR + s.name: s for s in table(context).values() if s.kind != ATTRIBUTE}
        div = found.get(_FHIR + "div")
        if div is not None and div.kind == XHTML:
            found[_DIV] = div
        _TAGS[context] = found
    return found


def _build(context: Context) -> dict[str, Slot]:
    m = model()
    out: dict[str, Slot] = {}
    for el in m.children(*context):
        names = [el.choice_name(t.code) for t in el.types] if el.is_choice else [el.name]
        for name in names:
            ref = m.child(context[0], context[1], name)
            if ref is None:
                continue
            info = m.primitive(ref.type_code) if ref.kind == "primitive" else None
            out[name] = Slot(
                name=name,
                order=ref.order,
                kind=ATTRIBUTE if el.is_xml_attribute else _KINDS[ref.kind],
                array=el.is_array,
                type_code=ref.type_code,
                context=ref.context,
                choice=el.path if el.is_choice else "",
                json=info.json if info else "string",
                pattern=re.compile(info.regex) if info and info.regex else None,
                choice_base=el.name,
            )
    return out
