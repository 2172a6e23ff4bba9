"""The narrative rules of ``txt-1``/``txt-2`` (FHIR's ``htmlChecks()``), as one function on the ``div`` text.

https://hl7.org/fhir/R4/narrative.html#rules: the basic HTML 4.0 formatting elements of chapters 7-11 and
15, ``<a>``, images and style attributes; no scripts, forms, frames, objects or event handlers; and some
content (text, or an image). Kept apart from the FHIRPath engine so that the JSON checks of
:mod:`.native` and the engine's ``htmlChecks()`` (:mod:`.fhirpath_ext`) are one rule, and so that
checking a narrative needs no engine.
"""

from __future__ import annotations

from lxml import etree

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.xmlio import XHTML_NS, _parse_div

__all__ = ["HTML_ELEMENTS", "html_ok", "narrative_ok"]

HTML_ELEMENTS = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "b",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    ]
)


def html_ok(div: etree._Element) -> bool:
    """Only allowed XHTML elements, no event-handler attributes, and some text or an image."""
    for elem in div.iter():
        if not isinstance(elem.tag, str):
            continue
        namespace, _, name = elem.tag[1:].partition("}")
        if namespace != XHTML_NS or name not in HTML_ELEMENTS:
            return False
        if any(str(attr).lower().startswith("on") for attr in elem.attrib):  # event handlers are scripts
            return False
    has_text = "".join(str(text) for text in div.itertext()).strip() != ""
    return has_text or any(True for _ in div.iter(f"{{{XHTML_NS}}}img"))


def narrative_ok(text: str) -> bool:
    """``htmlChecks()`` on a ``div`` string: well-formed XHTML in a ``div`` that follows the rules."""
    try:
        div = _parse_div(text, "")
    except FhirFormatError:
        return False
    return html_ok(div)
