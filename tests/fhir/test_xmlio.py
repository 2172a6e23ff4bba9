"""FHIR XML <-> JSON: round trips on real examples, hand-written representation cases, errors, unsafe XML."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.jsonio import loads
from escape_fhir.fhir.xmlio import FHIR_NS, XHTML_NS, _parser, json_to_xml, xml_to_json
from tests.helpers import SHARED

EXAMPLE_DIRS = [SHARED / "fhir" / "bars" / "Examples", SHARED / "fhir" / "ukcore" / "examples"]
EXAMPLES = sorted(p for d in EXAMPLE_DIRS if d.is_dir() for p in d.iterdir() if p.suffix in (".xml", ".json"))
# Examples that are not valid FHIR, with the error and location we must report.
INVALID_EXAMPLES = {
    "Extension-UKCore-ConditionEpisode-Example.xml": (
        "only one of value[x] is allowed",
        "Condition.extension[0].valueCodeableConcept",
    ),
}


def exact(value: Any) -> Any:
    """A comparable form where 1.50 != 1.5 and true != 1 (plain == on Decimal and bool would hide both)."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | Decimal | float):
        return ("number", str(value))
    return value


def canonical_xml(elem: etree._Element) -> Any:
    """Element tree without comments, PIs, xsi attributes and layout whitespace; XHTML kept whole (C14N)."""
    if elem.tag == f"{{{XHTML_NS}}}div":
        return etree.tostring(elem, method="c14n", with_comments=False).decode()
    attrs = sorted((k, v) for k, v in elem.attrib.items() if not k.startswith("{http://www.w3.org/2001/XMLSchema"))
    children = [canonical_xml(c) for c in elem if isinstance(c.tag, str)]
    # Some examples list elements out of definition order; the writer puts them in order. Sorting by name
    # (stable, so repeats keep their order) compares content, not that correction.
    return (elem.tag, attrs, sorted(children, key=lambda c: c[0] if isinstance(c, tuple) else ""))


def parse_plain(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(remove_comments=True, remove_pis=True, resolve_entities=False))


# ---- real examples --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in EXAMPLES])
def test_example_round_trips(path: Path) -> None:
    data = path.read_bytes()
    if path.name in INVALID_EXAMPLES:
        message, location = INVALID_EXAMPLES[path.name]
        with pytest.raises(FhirFormatError) as err:
            xml_to_json(data)
        assert (message, location) == (str(err.value).split(": ", 1)[1], err.value.location)
        return
    resource = xml_to_json(data) if path.suffix == ".xml" else loads(data)
    xml = json_to_xml(resource)
    assert exact(xml_to_json(xml)) == exact(resource)  # JSON -> XML -> JSON
    assert exact(xml_to_json(json_to_xml(resource, pretty=True))) == exact(resource)
    if path.suffix == ".xml":  # XML -> JSON -> XML: the same elements, attributes and narrative
        assert canonical_xml(parse_plain(xml)) == canonical_xml(parse_plain(data))


def test_examples_present_or_skipped() -> None:
    if not EXAMPLES:
        pytest.skip(f"{SHARED}/fhir examples not present")
    assert any(p.suffix == ".json" for p in EXAMPLES)


# ---- hand-written representation cases ------------------------------------------------------------------------

NARRATIVE = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Zoë <b>Smith</b> &amp; co, &lt;3</p>\n  <br/></div>'
CASES = [
    pytest.param(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueQuantity": {"value": Decimal("1.50"), "unit": "kg"},
        },
        ['<valueQuantity><value value="1.50"/><unit value="kg"/></valueQuantity>'],
        id="decimal-trailing-zero",
    ),
    pytest.param(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "component": [
                {"code": {"text": "a"}, "valueQuantity": {"value": loads(b'{"v":0.000}')["v"]}},
                {"code": {"text": "b"}, "valueQuantity": {"value": loads(b'{"v":-0.5}')["v"]}},
                {"code": {"text": "c"}, "valueQuantity": {"value": loads(b'{"v":1E+3}')["v"]}},
                {"code": {"text": "d"}, "valueQuantity": {"value": loads(b'{"v":1e-7}')["v"]}},
                {"code": {"text": "e"}, "valueInteger": -12},
            ],
        },
        ['value="0.000"', 'value="-0.5"', 'value="1E+3"', 'value="1e-7"', '<valueInteger value="-12"/>'],
        id="decimal-forms-and-integer",
    ),
    pytest.param(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "2024-02-29T23:59:60.123456+05:45",
            "issued": "2024-03-01T00:00:00.1-13:59",
        },
        [
            '<effectiveDateTime value="2024-02-29T23:59:60.123456+05:45"/>',
            '<issued value="2024-03-01T00:00:00.1-13:59"/>',
        ],
        id="timestamps-kept-as-written",
    ),
    pytest.param(
        {
            "resourceType": "Patient",
            "id": "p1",
            "_id": {"extension": [{"url": "http://x/e", "valueBoolean": True}]},
            "name": [{"id": "n1", "family": "Smith", "_family": {"id": "f1"}}],
            "birthDate": "1970",
            "_birthDate": {"id": "bd"},
        },
        [
            '<id value="p1"><extension url="http://x/e"><valueBoolean value="true"/></extension></id>',
            '<name id="n1"><family id="f1" value="Smith"/></name>',
            '<birthDate id="bd" value="1970"/>',
        ],
        id="element-ids-primitive-and-complex",
    ),
    pytest.param(
        {
            "resourceType": "Patient",
            "name": [
                {
                    "given": ["Ann", None, "Jo"],
                    "_given": [None, {"extension": [{"url": "http://x/u", "valueCode": "unknown"}]}, {"id": "g3"}],
                }
            ],
        },
        [
            '<given value="Ann"/><given><extension url="http://x/u"><valueCode value="unknown"/></extension></given>'
            '<given id="g3" value="Jo"/>'
        ],
        id="primitive-extensions-in-array-null-aligned",
    ),
    pytest.param(
        {"resourceType": "Patient", "_gender": {"extension": [{"url": "http://x/absent", "valueCode": "asked"}]}},
        ['<gender><extension url="http://x/absent"><valueCode value="asked"/></extension></gender>'],
        id="primitive-with-extension-only",
    ),
    pytest.param(
        {"resourceType": "Patient", "text": {"status": "generated", "div": NARRATIVE}},
        ['<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Zoë <b>Smith</b>'],
        id="xhtml-narrative",
    ),
    pytest.param(
        {
            "resourceType": "Observation",
            "contained": [{"resourceType": "Patient", "id": "pat", "active": False}],
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "#pat"},
        },
        ['<contained><Patient><id value="pat"/><active value="false"/></Patient></contained>'],
        id="contained-resource",
    ),
    pytest.param(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a"}},
                {
                    "response": {
                        "status": "400",
                        "outcome": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "invalid", "expression": ["Patient.name[0]"]}],
                        },
                    }
                },
            ],
        },
        [
            '<entry><fullUrl value="urn:uuid:1"/><resource><Patient><id value="a"/></Patient></resource></entry>',
            '<response><status value="400"/><outcome><OperationOutcome><issue>',
        ],
        id="bundle-nested-resources",
    ),
    pytest.param(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "resource", "resource": {"resourceType": "Patient", "active": True}},
                {"name": "n", "valueDecimal": loads(b'{"v": 2.0}')["v"]},
                {"name": "ok", "valueBoolean": False},
            ],
        },
        [
            '<parameter><name value="resource"/><resource><Patient><active value="true"/></Patient></resource>',
            '<valueDecimal value="2.0"/>',
            '<valueBoolean value="false"/>',
        ],
        id="parameters-resource-and-choice",
    ),
    pytest.param(
        {
            "resourceType": "Questionnaire",
            "status": "draft",
            "item": [
                {
                    "linkId": "1",
                    "type": "group",
                    "item": [
                        {
                            "linkId": "1.1",
                            "type": "integer",
                            "initial": [{"valueInteger": 3}],
                            "item": [{"linkId": "1.1.1", "type": "display", "text": "deep"}],
                        }
                    ],
                }
            ],
        },
        ['<item><linkId value="1.1.1"/><text value="deep"/><type value="display"/></item>'],
        id="content-reference-nested-items",
    ),
    pytest.param(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueString": 'a\nb\tc "d"',
            "modifierExtension": [{"url": "http://x/m", "valuePeriod": {"start": "2024"}}],
            "extension": [{"url": "http://x/e", "valueUnsignedInt": 0}],
        },
        [
            '<extension url="http://x/e"><valueUnsignedInt value="0"/></extension><modifierExtension',
            'value="a&#10;b&#9;c &quot;d&quot;"',
        ],
        id="extensions-first-and-string-escapes",
    ),
]


@pytest.mark.parametrize(("resource", "fragments"), CASES)
def test_json_to_xml_to_json(resource: dict[str, Any], fragments: list[str]) -> None:
    xml = json_to_xml(resource).decode()
    for fragment in fragments:
        assert fragment in xml
    assert exact(xml_to_json(xml.encode())) == exact(resource)


def test_elements_written_in_definition_order() -> None:
    resource = {
        "resourceType": "Patient",
        "gender": "male",
        "name": [{"given": ["A"], "family": "B"}],
        "active": True,
        "id": "x",
        "extension": [{"valueString": "v", "url": "http://x"}],
    }
    root = etree.fromstring(json_to_xml(resource))
    assert [etree.QName(c).localname for c in root] == ["id", "extension", "active", "name", "gender"]
    assert [etree.QName(c).localname for c in root[3]] == ["family", "given"]
    assert root.tag == f"{{{FHIR_NS}}}Patient" and root.nsmap == {None: FHIR_NS}


def test_pretty_xml_leaves_narrative_whitespace_alone() -> None:
    resource = {"resourceType": "Patient", "text": {"status": "generated", "div": NARRATIVE}, "active": True}
    pretty = json_to_xml(resource, pretty=True)
    assert b'\n  <text>\n    <status value="generated"/>\n    <div' in pretty
    assert xml_to_json(pretty)["text"]["div"] == NARRATIVE


@pytest.mark.parametrize(
    ("xml", "div"),
    [
        pytest.param(
            '<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><text>'
            '<status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">'
            "<p class='a'>&#233;&#x41;<br /></p></div></text></Patient>",
            '<div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en"><p class="a">éA<br/></p></div>',
            id="xsi-in-scope-and-references-normalised",
        ),
        pytest.param(
            '<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml"><text>'
            '<status value="generated"/><h:div><h:p>x</h:p></h:div></text></Patient>',
            '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>',
            id="prefixed-xhtml",
        ),
        pytest.param(
            '<f:Patient xmlns:f="http://hl7.org/fhir"><f:text><f:status value="generated"/>'
            '<div xmlns="http://www.w3.org/1999/xhtml">x</div></f:text></f:Patient>',
            '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            id="prefixed-fhir",
        ),
    ],
)
def test_div_serialised_with_default_xhtml_namespace(xml: str, div: str) -> None:
    assert xml_to_json(xml.encode())["text"]["div"] == div


# ---- errors with locations ------------------------------------------------------------------------------------

QR_BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient"}},
        {
            "resource": {
                "resourceType": "QuestionnaireResponse",
                "status": "completed",
                "item": [{"linkId": "1", "answer": [{"valueFoo": "x"}]}],
            }
        },
    ],
}
JSON_ERRORS = [
    pytest.param({"resourceType": "Patient", "foo": 1}, "unknown element foo", "Patient.foo", id="unknown-element"),
    pytest.param({"resourceType": "Patientx"}, "unknown resource type Patientx", "Patientx", id="unknown-type"),
    pytest.param({"id": "x"}, "a resource must be an object with a string resourceType", "", id="no-resourceType"),
    pytest.param(
        QR_BUNDLE,
        "unknown element valueFoo",
        "Bundle.entry[1].resource.item[0].answer[0].valueFoo",
        id="deep-unknown-element",
    ),
    pytest.param(
        {"resourceType": "Patient", "active": "yes"},
        "boolean must be a JSON boolean, not string",
        "Patient.active",
        id="boolean-as-string",
    ),
    pytest.param(
        {"resourceType": "Patient", "multipleBirthInteger": Decimal("1.5")},
        "integer must be a whole number, not 1.5",
        "Patient.multipleBirthInteger",
        id="integer-fraction",
    ),
    pytest.param(
        {"resourceType": "Patient", "birthDate": 1970},
        "date must be a JSON string, not number",
        "Patient.birthDate",
        id="date-as-number",
    ),
    pytest.param(
        {"resourceType": "Patient", "name": {"family": "x"}},
        "name must be an array",
        "Patient.name",
        id="object-for-array",
    ),
    pytest.param(
        {"resourceType": "Patient", "gender": ["male"]},
        "code must be a JSON string, not array",
        "Patient.gender",
        id="array-for-single",
    ),
    pytest.param(
        {"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [None]}]},
        "given and _given must have the same length",
        "Patient.name[0].given",
        id="misaligned-arrays",
    ),
    pytest.param(
        {"resourceType": "Observation", "valueString": "a", "valueInteger": 1},
        "only one of value[x] is allowed",
        "Observation.valueInteger",
        id="two-choices",
    ),
    pytest.param(
        {"resourceType": "Patient", "gender": None}, "null is not allowed here", "Patient.gender", id="null-single"
    ),
    pytest.param(
        {"resourceType": "Patient", "contact": [None]},
        "null is not allowed here",
        "Patient.contact[0]",
        id="null-complex-in-array",
    ),
    pytest.param(
        {"resourceType": "Patient", "text": {"status": "generated", "div": "<p>x</p>"}},
        "div must be an XHTML div element in the XHTML namespace",
        "Patient.text.div",
        id="div-not-xhtml",
    ),
    pytest.param(
        {"resourceType": "Patient", "text": {"status": "generated", "div": "<div"}},
        "div is not well-formed XHTML",
        "Patient.text.div",
        id="div-malformed",
    ),
    pytest.param(
        {"resourceType": "Patient", "contained": [{"resourceType": "Nope"}]},
        "unknown resource type Nope",
        "Patient.contained[0]",
        id="contained-unknown-type",
    ),
    pytest.param(
        {"resourceType": "Patient", "name": [{"_id": {"id": "x"}}]},
        "unknown element _id",
        "Patient.name[0]._id",
        id="underscore-on-element-id",
    ),
    pytest.param(
        {"resourceType": "Patient", "name": [{"_text": {"value": "x"}}]},
        "unknown element value",
        "Patient.name[0].text.value",
        id="value-inside-underscore",
    ),
    pytest.param(
        {"resourceType": "Patient", "name": [{"family": "a\x01b"}]},
        "string contains characters not allowed in XML",
        "Patient.name[0].family",
        id="control-character",
    ),
    pytest.param(
        {"resourceType": "Patient", "extension": [{"url": 5}]},
        "uri must be a JSON string, not number",
        "Patient.extension[0].url",
        id="attribute-wrong-type",
    ),
    pytest.param(
        {"resourceType": "Patient", "meta": "x"},
        "expected an object, not string",
        "Patient.meta",
        id="string-for-object",
    ),
]


@pytest.mark.parametrize(("resource", "message", "location"), JSON_ERRORS)
def test_json_to_xml_errors(resource: dict[str, Any], message: str, location: str) -> None:
    with pytest.raises(FhirFormatError) as err:
        json_to_xml(resource)
    assert err.value.location == location
    assert str(err.value).removeprefix(f"{location}: ").startswith(message)


F = 'xmlns="http://hl7.org/fhir"'
ANSWER_TEXT = (
    f'<Bundle {F}><type value="collection"/>'
    "<entry><resource><Patient/></resource></entry><entry><resource><Patient/></resource></entry>"
    '<entry><resource><QuestionnaireResponse><status value="completed"/><item><linkId value="1"/>'
    "<answer>stray text</answer></item></QuestionnaireResponse></resource></entry></Bundle>"
)
XML_ERRORS = [
    pytest.param(
        '<Patient xmlns="http://example.org/fhir"/>',
        "element Patient is not in the FHIR namespace",
        "Patient",
        id="wrong-namespace",
    ),
    pytest.param("<Patient/>", "element Patient is not in the FHIR namespace", "Patient", id="no-namespace"),
    pytest.param(f"<Foo {F}/>", "unknown resource type Foo", "Foo", id="unknown-type"),
    pytest.param(f"<HumanName {F}/>", "unknown resource type HumanName", "HumanName", id="data-type-as-root"),
    pytest.param(
        f'<Patient {F}><foo value="x"/></Patient>', "unknown element foo", "Patient.foo", id="unknown-element"
    ),
    pytest.param(
        f'<Patient {F}>hello<active value="true"/></Patient>',
        "text is not allowed here: 'hello'",
        "Patient",
        id="text-in-resource",
    ),
    pytest.param(
        ANSWER_TEXT,
        "text is not allowed here: 'stray text'",
        "Bundle.entry[2].resource.item[0].answer[0]",
        id="text-deep-in-bundle",
    ),
    pytest.param(
        f'<Patient {F}><gender value="male"/><gender value="female"/></Patient>',
        "element gender repeats but its maximum is 1",
        "Patient.gender",
        id="single-repeated",
    ),
    pytest.param(
        f'<Patient {F}><active value="yes"/></Patient>',
        "'yes' is not a valid boolean",
        "Patient.active",
        id="bad-boolean",
    ),
    pytest.param(
        f'<Observation {F}><valueQuantity><value value="1,5"/></valueQuantity></Observation>',
        "'1,5' is not a valid decimal",
        "Observation.valueQuantity.value",
        id="bad-decimal",
    ),
    pytest.param(
        f'<Patient {F}><multipleBirthInteger value="1.0"/></Patient>',
        "'1.0' is not a valid integer",
        "Patient.multipleBirthInteger",
        id="bad-integer",
    ),
    pytest.param(
        f'<Patient {F}><gender foo="x" value="male"/></Patient>',
        "unknown attribute foo",
        "Patient.gender.foo",
        id="unknown-attribute",
    ),
    pytest.param(f'<Patient {F} id="x"/>', "unknown attribute id", "Patient.id", id="resource-id-as-attribute"),
    pytest.param(
        f'<Patient {F}><id><value value="x"/></id></Patient>',
        "unknown element value",
        "Patient.id.value",
        id="value-as-element",
    ),
    pytest.param(
        f"<Patient {F}><gender/></Patient>",
        "element gender has no value and no extensions",
        "Patient.gender",
        id="empty-primitive",
    ),
    pytest.param(
        f"<Bundle {F}><entry><resource><Patient/><Patient/></resource></entry></Bundle>",
        "expected exactly one resource element",
        "Bundle.entry[0].resource",
        id="two-resources-in-one",
    ),
    pytest.param(
        f'<Patient {F}><text><status value="generated"/><div>x</div></text></Patient>',
        "Narrative.div must be an XHTML div element",
        "Patient.text.div",
        id="div-in-fhir-namespace",
    ),
    pytest.param(
        f'<Patient {F}><x:active xmlns:x="urn:x" value="true"/></Patient>',
        "element active is not in the FHIR namespace",
        "Patient.active",
        id="foreign-element",
    ),
    pytest.param(
        f'<Observation {F}><valueString value="a"/><valueBoolean value="true"/></Observation>',
        "only one of value[x] is allowed",
        "Observation.valueBoolean",
        id="two-choices",
    ),
    pytest.param(
        f"<Bundle {F}><entry><response><outcome><Patient/></outcome></response></entry></Bundle>",
        "expected a OperationOutcome resource, not Patient",
        "Bundle.entry[0].response.outcome",
        id="outcome-of-wrong-type",
    ),
    pytest.param(f"<Patient {F}><active value='true'></Patient>", "malformed XML", "", id="malformed"),
    pytest.param(
        f"<Patient {F}>&undefined;</Patient>",
        "malformed XML: Entity 'undefined' not defined",
        "",
        id="undefined-entity",
    ),
]


@pytest.mark.parametrize(("xml", "message", "location"), XML_ERRORS)
def test_xml_to_json_errors(xml: str, message: str, location: str) -> None:
    with pytest.raises(FhirFormatError) as err:
        xml_to_json(xml.encode())
    assert err.value.location == location
    assert str(err.value).removeprefix(f"{location}: ").startswith(message)


def test_comments_and_processing_instructions_are_ignored() -> None:
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="x.xsl"?>\n<!-- before -->\n'
        b'<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xsi:schemaLocation="http://hl7.org/fhir patient.xsd"><!-- inside --><?pi data?>'
        b'<active value="true"/><!-- after --></Patient>'
    )
    assert xml_to_json(xml) == {"resourceType": "Patient", "active": True}


# ---- unsafe XML -----------------------------------------------------------------------------------------------

REFUSED = "DOCTYPE/entity declarations are not allowed in FHIR XML"
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE Patient [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n' for i in range(1, 10))
    + ']>\n<Patient xmlns="http://hl7.org/fhir"><id value="&lol9;"/></Patient>'
)


def xxe(target: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "{target}">]>'
        f'<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>'
    ).encode()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET")
    return path


def unsafe_documents(secret: Path) -> dict[str, bytes]:
    dtd = secret.with_suffix(".dtd")
    dtd.write_text('<!ENTITY x "TOP-SECRET">')
    return {
        "external-entity-file": xxe(secret.as_uri()),
        "external-entity-passwd": xxe("file:///etc/passwd"),
        "external-entity-http": xxe("http://127.0.0.1:9/secret"),
        "external-dtd": f'<!DOCTYPE Patient SYSTEM "{dtd.as_uri()}"><Patient xmlns="http://hl7.org/fhir">'
        '<id value="&x;"/></Patient>'.encode(),
        "parameter-entity": f'<!DOCTYPE Patient [<!ENTITY % p SYSTEM "{dtd.as_uri()}"> %p;]>'
        '<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>'.encode(),
        "doctype-after-comment-and-bom": b'\xef\xbb\xbf<?xml version="1.0"?><!-- c --><?pi?>\n<!DOCTYPE Patient>'
        b'<Patient xmlns="http://hl7.org/fhir"/>',
        "billion-laughs": BILLION_LAUGHS.encode(),
    }


@pytest.mark.parametrize(
    "name",
    [
        "external-entity-file",
        "external-entity-passwd",
        "external-entity-http",
        "external-dtd",
        "parameter-entity",
        "doctype-after-comment-and-bom",
        "billion-laughs",
    ],
)
def test_doctype_refused(name: str, secret: Path) -> None:
    with pytest.raises(FhirFormatError) as err:
        xml_to_json(unsafe_documents(secret)[name])
    assert str(err.value) == REFUSED


@pytest.mark.parametrize("name", ["external-entity-file", "external-dtd", "parameter-entity"])
def test_parser_itself_reads_nothing_even_past_the_prolog_check(name: str, secret: Path) -> None:
    """Defence in depth: the lxml parser alone neither loads the DTD nor expands external entities."""
    try:
        root = etree.fromstring(unsafe_documents(secret)[name], _parser())
    except etree.XMLSyntaxError:
        return  # refused by libxml2: nothing read either
    assert b"TOP-SECRET" not in etree.tostring(root)


def test_div_with_doctype_refused_when_writing_xml(secret: Path) -> None:
    div = f'<!DOCTYPE div [<!ENTITY x SYSTEM "{secret.as_uri()}">]><div xmlns="{XHTML_NS}">&x;</div>'
    with pytest.raises(FhirFormatError) as err:
        json_to_xml({"resourceType": "Patient", "text": {"status": "generated", "div": div}})
    assert err.value.location == "Patient.text.div"
    assert REFUSED in str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            '<Patient xmlns="http://hl7.org/fhir"/>'.encode("utf-16"), "must be encoded in UTF-8", id="utf-16"
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="ISO-8859-1"?><Patient xmlns="http://hl7.org/fhir"/>',
            "must be encoded in UTF-8, not ISO-8859-1",
            id="latin-1",
        ),
    ],
)
def test_non_utf8_refused(data: bytes, message: str) -> None:
    with pytest.raises(FhirFormatError, match=message):
        xml_to_json(data)


BOUNDED_PARSE = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from lxml import etree
    from escape_fhir.errors import FhirFormatError
    from escape_fhir.fhir.xmlio import _parser, xml_to_json
    data = sys.stdin.buffer.read()
    try:
        xml_to_json(data)
        print("parsed")
    except FhirFormatError as e:
        print("refused:", e)
    try:  # and the bare parser, which does not expand entities
        root = etree.fromstring(data, _parser())
        print("bare parser text length", len(etree.tostring(root)))
    except etree.XMLSyntaxError as e:
        print("bare parser refused:", e)
    """
)


def test_billion_laughs_refused_in_bounded_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BOUNDED_PARSE],
        input=BILLION_LAUGHS.encode(),
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"refused: {REFUSED}"
    assert lines[1].startswith("bare parser")
    if lines[1].startswith("bare parser text length"):
        assert int(lines[1].rsplit(" ", 1)[1]) < 10_000  # entities left unexpanded
