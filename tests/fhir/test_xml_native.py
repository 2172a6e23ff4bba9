"""The compiled XML reader (``_xmlread.pyx``, issue 11) against the Python one (``xml_read.XmlReader``).

The fast path must give exactly the Python reader's result (keys in the same order, the same value types:
bool, int, Decimal / RawDecimal, str) or give up (None), never anything else; where it gives up, the Python
reader reads the document, so errors, locations and validation issues are unchanged. Checked on every XML
file of the repository and of the reference data, on the XML our writer makes from every JSON example, on
generated variations (hypothesis), and on malformed ones.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from escape_fhir.errors import FhirFormatError, Issue
from escape_fhir.fhir import bounds, jsonio, xmlio
from escape_fhir.fhir.formats import dump, parse
from escape_fhir.fhir.xml_parse import FHIR_NS, XHTML_NS, XSI_NS, parse_xml
from escape_fhir.fhir.xml_read import XmlReader
from tests.helpers import EXAMPLES, ROOT, SHARED, fhir_examples

native = pytest.mark.skipif(
    xmlio.native_read is None,
    reason="the compiled XML reader (_xmlread, Cython) is not built here: ./dev setup builds it where a C compiler is",
)

F = "{" + FHIR_NS + "}"


def typed(value: Any) -> Any:
    """A form that compares key order and value types too (== alone takes 1 == True == Decimal(1), and
    Decimal('1.50') == Decimal('1.5'))."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, Decimal):
        return (type(value).__name__, str(value))
    return (type(value).__name__, value)


def python_read(data: bytes, issues: list[Issue] | None = None) -> dict[str, Any]:
    return XmlReader(issues).resource(parse_xml(data), "")


def python_outcome(data: bytes, issues: list[Issue] | None = None) -> Any:
    try:
        return typed(python_read(data, issues))
    except FhirFormatError as e:
        return ("error", str(e), e.location)


def fast_read(data: bytes) -> dict[str, Any] | None:
    assert xmlio.native_read is not None
    return xmlio.native_read(parse_xml(data))


def assert_same(data: bytes) -> bool:
    """The fast path gives the Python reader's result, or None. True when it read the document."""
    found = fast_read(data)
    if found is None:
        return False
    expected = python_read(data)
    assert typed(found) == typed(expected)
    assert jsonio.dumps(found) == jsonio.dumps(expected)
    return True


def python_objects(data: bytes) -> bool:
    """True when the Python reader has something to say: an error, or issues in validation mode."""
    issues: list[Issue] = []
    try:
        python_read(data, issues)
    except FhirFormatError:
        return True
    return bool(issues)


# ---- every XML file we have ----------------------------------------------------------------------------------

REPO_XML = sorted(
    p
    for folder in ("examples", "tests", "profiles")
    for p in (ROOT / folder).rglob("*.xml")
    if "node_modules" not in p.parts
)


@native
@pytest.mark.parametrize("path", REPO_XML, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_xml_reads_the_same(path: Path) -> None:
    data = path.read_bytes()
    try:
        parse_xml(data)
    except FhirFormatError:
        return  # not well-formed or unsafe on purpose: refused before either reader
    if not assert_same(data):
        # It gives up only where the Python reader refuses the document or reports something about it.
        assert python_objects(data), "the fast path gave up on a document the Python reader reads without a word"


@native
def test_reference_data_xml_reads_the_same() -> None:
    folder = SHARED / "fhir"
    if not folder.is_dir():
        pytest.skip(f"reference data {folder} is not present (../shared exists only on developer and CI machines)")
    read = declined = 0
    for path in sorted(folder.rglob("*.xml")):
        data = path.read_bytes()
        try:
            parse_xml(data)
        except FhirFormatError:
            continue
        if assert_same(data):
            read += 1
        else:
            assert python_objects(data), f"{path}: gave up on a document the Python reader reads without a word"
            declined += 1
    assert read > 100  # the UK Core examples, CodeSystems...: nearly all of them read on the fast path
    assert declined < read // 20


def _json_resources() -> list[Path]:
    senders = [p for p in (ROOT / "tests" / "fhir" / "senders").glob("*.json") if not p.name.endswith(".expect.json")]
    return fhir_examples(".json") + sorted(senders) + sorted((ROOT / "tests" / "fhir" / "data").glob("*.json"))


@native
@pytest.mark.parametrize("path", _json_resources(), ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_xml_written_from_json_reads_the_same(path: Path, pretty: bool) -> None:
    try:
        resource = parse(path.read_bytes(), "json")
        if "resourceType" not in resource:
            pytest.skip("not a FHIR resource (test data of another kind)")
        data = dump(resource, "xml", pretty=pretty)
    except FhirFormatError:
        pytest.skip("not a resource our writer takes (test data for errors)")
    # Our writer keeps definition order, so the fast path must read every one of them.
    assert assert_same(data), "the fast path gave up on XML our own writer made"
    assert typed(parse(data, "xml")) == typed(python_read(data))


# ---- the fast path is taken, or absent without harm ----------------------------------------------------------


@native
def test_fast_path_reads_a_typical_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (EXAMPLES / "bundles" / "back-physio-medium.message.xml").read_bytes()
    expected = typed(python_read(data))

    def refuse(*_: Any) -> None:
        raise AssertionError("the Python reader was used for a typical Bundle: the fast path was not taken")

    monkeypatch.setattr(XmlReader, "resource", refuse)
    assert typed(xmlio.xml_to_json(data)) == expected
    issues: list[Issue] = []
    assert typed(xmlio.xml_to_json(data, issues)) == expected  # validation reads it too, with nothing to report
    assert issues == []


def test_without_the_extension_the_python_reader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (EXAMPLES / "bundles" / "knee-gp.message.xml").read_bytes()
    with_native = typed(xmlio.xml_to_json(data))
    monkeypatch.setattr(xmlio, "native_read", None)
    assert typed(xmlio.xml_to_json(data)) == with_native == typed(python_read(data))


# ---- generated documents -------------------------------------------------------------------------------------

DECIMALS = st.sampled_from(["1.50", "1e2", "-0.0", "0", "3.14159265358979323846", "1E-3", "-12.0", "100"]) | st.builds(
    str, st.integers(-(10**20), 10**20)
)
INTEGERS = st.integers(-(2**31), 2**31 - 1) | st.integers(-(10**30), 10**30)  # FHIR integers and beyond
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(["\n", "\t", " ", "&", "<", '"', "é", "😀"]),
    min_size=1,
    max_size=12,
)
IDS = st.from_regex(r"[A-Za-z0-9\-.]{1,16}", fullmatch=True)


def primitive(value: Any) -> st.SearchStrategy[tuple[Any, dict[str, Any] | None]]:
    """A primitive's value and its ``_name`` part (id, extensions), or no value and only the extras."""
    extra = st.fixed_dictionaries(
        {}, optional={"id": IDS, "extension": st.just([{"url": "http://example.org/x", "valueString": "e"}])}
    ).map(lambda d: d or None)
    return st.tuples(st.none() | st.just(value), extra).filter(lambda t: t[0] is not None or t[1] is not None)


@st.composite
def observations(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": draw(IDS)}
    if draw(st.booleans()):
        div = f'<div xmlns="{XHTML_NS}"><p>{draw(TEXT).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}</p></div>'
        out["text"] = {"status": "generated", "div": div}
    if draw(st.booleans()):
        patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "active": draw(st.booleans())}
        given = draw(st.lists(primitive(draw(TEXT)), min_size=1, max_size=3))
        name: dict[str, Any] = {"family": draw(TEXT)}
        if any(v is not None for v, _ in given):
            name["given"] = [v for v, _ in given]
        if any(x is not None for _, x in given):
            name["_given"] = [x for _, x in given]
        patient["name"] = [name]
        birth, birth_extra = draw(primitive("1970-01-0" + str(draw(st.integers(1, 9)))))
        if birth is not None:
            patient["birthDate"] = birth
        if birth_extra is not None:
            patient["_birthDate"] = birth_extra
        out["contained"] = [patient]
    out["status"] = "final"
    out["code"] = {"coding": [{"system": "http://loinc.org", "code": "1234-5", "display": draw(TEXT)}]}
    kind = draw(st.sampled_from(["decimal", "integer", "boolean", "string"]))
    if kind == "decimal":
        out["valueQuantity"] = {"value": jsonio.decimal_from_text(draw(DECIMALS)), "unit": "mg"}
    elif kind == "integer":
        out["valueInteger"] = draw(INTEGERS)
    elif kind == "boolean":
        out["valueBoolean"] = draw(st.booleans())
    else:
        out["valueString"] = draw(TEXT)
    if draw(st.booleans()):
        out["component"] = [
            {"code": {"text": draw(TEXT)}, "valueInteger": draw(INTEGERS)} for _ in range(draw(st.integers(1, 3)))
        ]
    return out


def vary(data: bytes, rnd: random.Random) -> bytes:
    """The same content written differently: attributes reversed, xsi attributes, layout whitespace."""
    root = parse_xml(data)
    for elem in root.iter(F + "*"):
        items = list(elem.attrib.items())
        if len(items) > 1 and rnd.random() < 0.5:
            elem.attrib.clear()
            for key, value in reversed(items):
                elem.set(key, value)
        if len(elem) and rnd.random() < 0.3:
            elem.text = rnd.choice(["\n  ", " ", "\t", "\r\n"])
    if rnd.random() < 0.5:
        root.set(f"{{{XSI_NS}}}schemaLocation", "http://hl7.org/fhir fhir-all.xsd")
    return etree.tostring(root, xml_declaration=rnd.random() < 0.5, encoding="UTF-8")


@native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations(), st.booleans(), st.randoms(use_true_random=False))
def test_generated_documents_read_the_same(resource: dict[str, Any], pretty: bool, rnd: random.Random) -> None:
    data = vary(dump(resource, "xml", pretty=pretty), rnd)
    assert assert_same(data), "the fast path gave up on a valid, ordered document"
    assert unordered(parse(data, "xml")) == unordered(resource)  # and it is the resource written


def unordered(value: Any) -> Any:
    """:func:`typed` without key order (the generated dicts are not in the order the reader makes)."""
    found = typed(value)
    return _sort(found)


def _sort(form: Any) -> Any:
    if isinstance(form, tuple) and form[0] == "dict":
        return ("dict", sorted((k, _sort(v)) for k, v in form[1]))
    if isinstance(form, tuple) and form[0] == "list":
        return ("list", [_sort(v) for v in form[1]])
    return form


def _targets(root: etree._Element) -> list[etree._Element]:
    """Elements outside the narrative, below the root."""
    return [
        e
        for e in root.iter(F + "*")
        if e is not root and not any(a.tag.startswith("{" + XHTML_NS) for a in e.iterancestors())
    ]


def malform(data: bytes, how: str, rnd: random.Random) -> bytes:
    root = parse_xml(data)
    elems = _targets(root)
    target = rnd.choice(elems)
    if how == "unknown element":
        etree.SubElement(target.getparent() if len(target) == 0 else target, F + "notDefined").set("value", "x")
    elif how == "unknown attribute":
        target.set("colour", "red")
    elif how == "out of order":
        parents = [e for e in [root, *elems] if len([c for c in e if c.tag != f"{{{XHTML_NS}}}div"]) > 1]
        parent = rnd.choice(parents)
        children = [c for c in parent if c.tag != f"{{{XHTML_NS}}}div"]
        first, last = children[0], children[-1]
        parent.remove(last)
        first.addprevious(last)
    elif how == "text":
        target.text = "stray text"
    elif how == "tail":
        target.tail = " more "
    elif how == "bad number":
        numbers = [e for e in elems if e.tag in (F + "valueInteger", F + "value")] or [target]
        rnd.choice(numbers).set("value", rnd.choice(["abc", "1.2.3", "", "01", " 1"]))
    elif how == "repeat":
        target.addnext(etree.fromstring(etree.tostring(target)))
    elif how == "no value":
        for key in list(target.attrib):
            del target.attrib[key]
        for child in list(target):
            target.remove(child)
    return etree.tostring(root)


MALFORMATIONS = [
    "unknown element",
    "unknown attribute",
    "out of order",
    "text",
    "tail",
    "bad number",
    "repeat",
    "no value",
]


@native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations(), st.sampled_from(MALFORMATIONS), st.randoms(use_true_random=False))
def test_malformed_documents_fail_as_before(resource: dict[str, Any], how: str, rnd: random.Random) -> None:
    data = malform(dump(resource, "xml"), how, rnd)
    # What xml_to_json (fast path first) gives, reading and validating, is what the Python reader alone gives.
    for issues_given in (False, True):
        issues: list[Issue] | None = [] if issues_given else None
        python_issues: list[Issue] | None = [] if issues_given else None
        try:
            found: Any = typed(xmlio.xml_to_json(data, issues))
        except FhirFormatError as e:
            found = ("error", str(e), e.location)
        assert found == python_outcome(data, python_issues)
        assert issues == python_issues
    if python_objects(data):
        assert fast_read(data) is None  # never a result for a document the Python reader has something to say about


@native
@pytest.mark.parametrize(
    ("xml", "message", "location"),
    [
        (f'<Patient xmlns="{FHIR_NS}"><foo value="1"/></Patient>', "unknown element foo", "Patient.foo"),
        (
            f'<Patient xmlns="{FHIR_NS}"><active value="yes"/></Patient>',
            "'yes' is not a valid boolean",
            "Patient.active",
        ),
        (f'<Patient xmlns="{FHIR_NS}"><active value="true"/>x</Patient>', "text is not allowed here: 'x'", "Patient"),
        (
            f'<Patient xmlns="{FHIR_NS}"><active value="true"/><active value="true"/></Patient>',
            "element active repeats but its maximum is 1",
            "Patient.active",
        ),
        (
            f'<Patient xmlns="{FHIR_NS}"><birthDate/></Patient>',
            "element birthDate has no value and no extensions",
            "Patient.birthDate",
        ),
        (
            f'<Patient xmlns="{FHIR_NS}"><deceasedBoolean value="true"/><deceasedDateTime value="2020"/></Patient>',
            "only one of deceased[x] is allowed",
            "Patient.deceasedDateTime",
        ),
        (
            f'<Patient xmlns="{FHIR_NS}"><contained/></Patient>',
            "expected exactly one resource element",
            "Patient.contained[0]",
        ),
    ],
)
def test_errors_are_those_of_the_python_reader(xml: str, message: str, location: str) -> None:
    data = xml.encode()
    assert fast_read(data) is None
    with pytest.raises(FhirFormatError) as caught:
        xmlio.xml_to_json(data)
    assert (str(caught.value), caught.value.location) == (f"{location}: {message}", location)
    assert python_outcome(data) == ("error", str(caught.value), location)


# --- the depth bound ----------------------------------------------------------------------------------------
def _deep_patient(extensions: int, div_levels: int = 0) -> bytes:
    """A Patient whose extensions nest ``extensions`` deep, with a narrative of ``div_levels`` nested XHTML
    elements: the same depth semantics as JSON (bounds.MAX_DEPTH) apply to both."""
    inner = '<valueString value="v"/>'
    for _ in range(extensions):
        inner = f'<extension url="http://example.org/fhir/StructureDefinition/e">{inner}</extension>'
    div = "x"
    for _ in range(div_levels):
        div = f"<b>{div}</b>"
    text = f'<text><status value="generated"/><div xmlns="{XHTML_NS}">{div}</div></text>' if div_levels else ""
    return f'<Patient xmlns="{FHIR_NS}">{text}{inner}</Patient>'.encode()


@pytest.mark.parametrize(
    ("extensions", "div_levels"),
    [
        (10, 0),
        (bounds.MAX_DEPTH - 3, 0),
        (bounds.MAX_DEPTH - 1, 0),
        (bounds.MAX_DEPTH, 0),
        (1, bounds.MAX_DEPTH - 2),
        (1, bounds.MAX_DEPTH - 1),
        (1, bounds.MAX_DEPTH + 5),
    ],
)
def test_the_depth_limit_is_the_same_on_both_paths(extensions: int, div_levels: int) -> None:
    """The compiled reader skips the depth query and bounds the depth itself: what it reads, the Python
    reader (with the query) reads the same; what is too deep gets the same error from ``xml_to_json``."""
    data = _deep_patient(extensions, div_levels)
    expected = python_outcome(data)
    try:
        got: Any = typed(xmlio.xml_to_json(data))
    except FhirFormatError as e:
        got = ("error", str(e), e.location)
    assert got == expected
    too_deep = isinstance(expected, tuple) and "nested deeper than" in expected[1]
    assert too_deep == (extensions >= bounds.MAX_DEPTH or div_levels >= bounds.MAX_DEPTH - 1)
    if xmlio.native_read is not None and extensions < 20 and div_levels < 20:
        assert fast_read(data) is not None  # a shallow document is read by the compiled path
