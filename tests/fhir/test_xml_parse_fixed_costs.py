"""xml_parse's per-document shortcuts (issue 11, small documents): the same answers as the checks they skip.

- the prolog is scanned with one regex match (``_PROLOG``) instead of a loop over ``_PROLOG_ITEM``;
- ``parse_xml(check_depth=False)`` (the compiled reader's path) counts the ``<`` of a document only when the
  document is long enough for the element limit to matter.
"""

from __future__ import annotations

import re

import pytest

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import bounds, xml_parse, xmlio
from escape_fhir.fhir.xml_parse import parse_xml

PROLOGS = [
    b"",
    b"<Basic/>",
    b"<?xml version='1.0' encoding='UTF-8'?>\n<Basic/>",
    b'\xef\xbb\xbf<?xml version="1.0"?>  \r\n\t<!-- a --><?pi x?>\n<!-- b -->  <Basic/>',
    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'e'>]><Basic/>",
    b"<!-- a --><!DOCTYPE x><Basic/>",
    b"<!-- <!DOCTYPE x> --><Basic/>",
    b"<?pi <!DOCTYPE x> ?><Basic/>",
    b"<!-- unclosed <Basic/>",
    b"<? unclosed <Basic/>",
    b"<?a?><?b??><!----><!-- - -->\n<!DOCTYPE x>",
    b"   <!",
    b"<!-->",
    b"<!---->-->",
    b"\n\n<?x\n?>\n<!--\n-->\n<![CDATA[x]]>",
]


def _loop_end(data: bytes, pos: int) -> int:
    """The end of the prolog as the former loop found it: one ``_PROLOG_ITEM`` match at a time."""
    while (item := xml_parse._PROLOG_ITEM.match(data, pos)) is not None:
        pos = item.end()
    return pos


def _one_end(data: bytes, pos: int) -> int:
    found = xml_parse._PROLOG.match(data, pos)
    assert found is not None  # the repetition matches, if only the empty string
    return found.end()


@pytest.mark.parametrize("data", PROLOGS)
def test_one_match_ends_the_prolog_where_the_loop_did(data: bytes) -> None:
    for pos in range(len(data) + 1):
        assert _one_end(data, pos) == _loop_end(data, pos)


def test_one_match_agrees_with_the_loop_on_random_prologs() -> None:
    import random

    rng = random.Random(11)
    pieces = [b" ", b"\n", b"\t", b"<?", b"?>", b"<!--", b"-->", b"-", b"?", b"<!", b"<", b">", b"x", b"<Basic/>"]
    for _ in range(3000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        assert _one_end(data, 0) == _loop_end(data, 0), data


@pytest.mark.parametrize("data", PROLOGS)
def test_doctype_refusal_unchanged(data: bytes) -> None:
    def former(data: bytes) -> None:
        pos = len(b"\xef\xbb\xbf") if data.startswith(b"\xef\xbb\xbf") else 0
        if data.startswith(b"<!", _loop_end(data, pos)):
            raise FhirFormatError("DOCTYPE/entity declarations are not allowed in FHIR XML")

    def outcome(check: object, data: bytes) -> str | None:
        try:
            check(data)  # type: ignore[operator]
        except FhirFormatError as e:
            return str(e)
        return None

    assert outcome(xml_parse._check_prolog, data) == outcome(former, data)


class _Uncountable(bytes):
    """Bytes whose ``<`` must not be counted: the shortcut is taken when this parses."""

    def count(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        raise AssertionError("counted")


SMALL = b'<?xml version="1.0"?>\n<Basic xmlns="http://hl7.org/fhir"><id value="a"/></Basic>'


def test_small_document_is_not_counted_on_the_compiled_readers_path() -> None:
    root = parse_xml(_Uncountable(SMALL), check_depth=False)
    assert root.tag == "{http://hl7.org/fhir}Basic"
    with pytest.raises(AssertionError, match="counted"):
        parse_xml(_Uncountable(SMALL))  # the depth check needs the count


def test_small_document_read_without_a_count_when_the_compiled_reader_reads_it() -> None:
    if xmlio.native_read is None:
        pytest.skip("the compiled reader is not built")
    assert xmlio.xml_to_json(_Uncountable(SMALL)) == {"resourceType": "Basic", "id": "a"}


def test_element_limit_at_the_uncounted_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The densest document: every byte a ``<``. One more than 2 * limit + 1 is refused for its size before
    parsing (so counted), on both paths; 2 * limit + 1 is within the limit (not counted) and reaches lxml."""
    limit = 50
    monkeypatch.setattr(bounds, "MAX_CONTAINERS", limit)
    for check_depth in (False, True):
        with pytest.raises(bounds.TooLarge):
            parse_xml(b"<" * (2 * limit + 2), check_depth=check_depth)
        with pytest.raises(FhirFormatError, match="malformed XML") as caught:
            parse_xml(b"<" * (2 * limit + 1), check_depth=check_depth)
        assert not isinstance(caught.value, bounds.TooLarge)
    with pytest.raises(FhirFormatError, match="malformed XML"):
        parse_xml(_Uncountable(b"<" * (2 * limit + 1)), check_depth=False)
    many = b'<Basic xmlns="http://hl7.org/fhir">' + b"<a/>" * (2 * limit) + b"</Basic>"
    for check_depth in (False, True):
        with pytest.raises(bounds.TooLarge):
            parse_xml(many, check_depth=check_depth)
    with pytest.raises(bounds.TooLarge):
        xmlio.xml_to_json(many)


def test_prolog_pattern_is_the_items_pattern_repeated() -> None:
    assert xml_parse._PROLOG.pattern == b"(?:" + xml_parse._PROLOG_ITEM.pattern + b")*"
    assert xml_parse._PROLOG.flags & re.DOTALL
