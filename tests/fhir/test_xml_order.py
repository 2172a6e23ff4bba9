"""FHIR XML read for validation (issue 11): elements out of definition order and elements FHIR does not define
are error issues with their location, the rest of the document is still read; read for use, order is not
checked and an unknown element still stops the read (tests/fhir/test_xmlio.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from escape_fhir.cli import main
from escape_fhir.errors import Issue
from escape_fhir.fhir.jsonio import loads
from escape_fhir.fhir.xmlio import json_to_xml, xml_to_json
from tests.helpers import EXAMPLES, shared

F = 'xmlns="http://hl7.org/fhir"'
ORDER = "FHIR XML requires the order of the definition"
#: The UK Core 2.0.0 examples whose elements the HL7 reference validator finds out of order
#: (../shared/docs/reference-verdicts.md): the locations it reports.
UKCORE_OUT_OF_ORDER = {
    "Extension-UKCore-CodingSCT-IllicitDrugs-Example.xml": ["Observation.text"],
    "UKCore-Observation-Lab-Albumin-Example.xml": ["Observation.meta"],
    "UKCore-Questionnaire-EOLPlan-Example.xml": ["Questionnaire.item[0].item[0].item[0].extension[0]"],
}


def read(xml: str) -> tuple[dict[str, object], list[tuple[str, str]]]:
    issues: list[Issue] = []
    resource = xml_to_json(xml.encode(), issues)
    assert all(i.severity == "error" and i.code == "structure" for i in issues)
    return resource, [(i.location, i.message) for i in issues]


CASES = [
    pytest.param(
        f'<Patient {F}><id value="p"/><active value="true"/><name><family value="B"/><given value="A"/>'
        '<given value="C"/></name><gender value="male"/></Patient>',
        [],
        id="in-order",
    ),
    pytest.param(
        f'<Patient {F}><gender value="male"/><active value="true"/></Patient>',
        [("Patient.active", f"element 'active' is out of order (found after gender): {ORDER}")],
        id="swapped-pair",
    ),
    pytest.param(
        f'<Patient {F}><name><given value="A"/><family value="B"/></name></Patient>',
        [("Patient.name[0].family", f"element 'family' is out of order (found after given): {ORDER}")],
        id="inside-a-data-type",
    ),
    pytest.param(
        f'<Patient {F}><name><given value="A"/><family value="B"/><given value="C"/></name></Patient>',
        [("Patient.name[0].family", f"element 'family' is out of order (found after given): {ORDER}")],
        id="a-repeat-split-by-an-earlier-element",
    ),
    pytest.param(
        f'<Patient {F}><identifier><value value="1"/></identifier><active value="true"/>'
        '<identifier><value value="2"/></identifier></Patient>',
        [("Patient.identifier[1]", f"element 'identifier' is out of order (found after active): {ORDER}")],
        id="a-repeat-after-a-later-element",
    ),
    pytest.param(
        f'<Bundle {F}><type value="collection"/><entry><resource><Patient><gender value="male"/>'
        '<active value="true"/></Patient></resource></entry></Bundle>',
        [("Bundle.entry[0].resource.active", f"element 'active' is out of order (found after gender): {ORDER}")],
        id="nested-resource",
    ),
    pytest.param(
        f'<Observation {F}><extension url="u"><valueString value="v"/></extension><id value="o"/>'
        '<status value="final"/><code><text value="t"/></code></Observation>',
        [("Observation.id", f"element 'id' is out of order (found after extension): {ORDER}")],
        id="id-last-of-three",
    ),
    pytest.param(
        f'<Patient {F}><active value="true"/><colour value="red"/><gender value="male"/></Patient>',
        [("Patient.colour", "unknown element 'colour'")],
        id="unknown-element",
    ),
    pytest.param(
        f'<Patient {F}><name><family value="B" lang="en"/></name></Patient>',
        [("Patient.name[0].family.lang", "unknown attribute 'lang'")],
        id="unknown-attribute",
    ),
]


@pytest.mark.parametrize(("xml", "expected"), CASES)
def test_order_and_unknown_elements_are_issues(xml: str, expected: list[tuple[str, str]]) -> None:
    assert read(xml)[1] == expected


def test_an_element_out_of_order_is_still_read() -> None:
    resource, issues = read(
        f'<Patient {F}><name><given value="A"/><family value="B"/><given value="C"/></name>'
        '<active value="true"/></Patient>'
    )
    assert len(issues) == 2
    assert resource == {"resourceType": "Patient", "active": True, "name": [{"given": ["A", "C"], "family": "B"}]}


def test_an_unknown_element_is_left_out_and_the_rest_read() -> None:
    resource, issues = read(f'<Patient {F}><active value="true"/><colour><x value="1"/></colour></Patient>')
    assert issues == [("Patient.colour", "unknown element 'colour'")]
    assert resource == {"resourceType": "Patient", "active": True}


def test_reading_for_use_accepts_any_order() -> None:
    xml = f'<Patient {F}><gender value="male"/><active value="true"/></Patient>'
    assert xml_to_json(xml.encode()) == {"resourceType": "Patient", "gender": "male", "active": True}


# Every FHIR example of ours: the referral and site-directory examples are our own JSON, not FHIR resources.
@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXAMPLES.rglob("*.json") if not {"referrals", "sites"} & set(p.relative_to(EXAMPLES).parts)),
    ids=lambda p: p.name,
)
def test_our_writer_puts_every_example_in_order(path: Path) -> None:
    issues: list[Issue] = []
    resource = loads(path.read_bytes())
    assert xml_to_json(json_to_xml(resource), issues) == resource
    assert issues == []


def _move_first_to_end(data: bytes) -> tuple[bytes, str]:
    """A copy of a resource whose first element is moved after its last: that one element is out of order."""
    root = etree.fromstring(data)
    elements = [c for c in root if isinstance(c.tag, str)]
    first = elements[0]
    root.remove(first)
    root.append(first)
    return etree.tostring(root), f"{etree.QName(root).localname}.{etree.QName(first).localname}"


@pytest.mark.parametrize(
    "name", ["UKCore-Patient-Sn-SingleLanguage-Example.xml", "UKCore-Condition-HipReplacement-Example.xml"]
)
def test_a_uk_core_example_made_out_of_order(name: str) -> None:
    path = shared("fhir", "ukcore", "examples", name)
    original = xml_to_json(path.read_bytes())
    moved, location = _move_first_to_end(path.read_bytes())
    issues: list[Issue] = []
    resource = xml_to_json(moved, issues)
    assert [(i.location, i.message.split(" (")[0]) for i in issues] == [
        (location, f"element '{location.split('.')[-1]}' is out of order")
    ]
    assert resource == original  # reported, and read all the same


@pytest.mark.parametrize("name", sorted(UKCORE_OUT_OF_ORDER))
def test_uk_core_examples_the_reference_finds_out_of_order(name: str) -> None:
    issues: list[Issue] = []
    xml_to_json(shared("fhir", "ukcore", "examples", name).read_bytes(), issues)
    assert [i.location for i in issues] == UKCORE_OUT_OF_ORDER[name]


def test_every_other_uk_core_example_is_in_order() -> None:
    folder = shared("fhir", "ukcore", "examples")
    found = {}
    for path in sorted(folder.glob("*.xml")):
        issues: list[Issue] = []
        try:
            xml_to_json(path.read_bytes(), issues)
        except Exception:  # a few are not readable FHIR at all (test_xmlio.py checks those)
            continue
        if issues:
            found[path.name] = [i.location for i in issues]
    assert found == UKCORE_OUT_OF_ORDER


# ---- through the command line and $validate ---------------------------------------------------------------


def _xml_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "patient.xml"
    path.write_text(
        f'<Patient {F}><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">'
        f"p</div></text>{body}</Patient>"
    )
    return str(path)


def test_cli_validate_reports_order_and_unknown_elements_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _xml_file(tmp_path, '<gender value="male"/><active value="true"/><colour value="red"/>')
    code = main(["validate", path])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert f"error Patient.active: element 'active' is out of order (found after gender): {ORDER}" in out
    assert "error Patient.colour: unknown element 'colour'" in out


def test_cli_validate_of_xml_in_order_is_clean(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["validate", _xml_file(tmp_path, '<active value="true"/><gender value="male"/>')])
    assert (code, capsys.readouterr().out.strip()) == (0, "ok")


def test_our_xml_examples_are_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in EXAMPLES.rglob("*.xml"))
    assert files
    code = main(["validate", *files])
    assert code == 0, capsys.readouterr().out
    assert "out of order" not in capsys.readouterr().out
