"""The compact R4 model: lookups over real definitions, and the committed file matching its generator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from escape_fhir.fhir.r4model import model
from tests.helpers import SHARED

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "src" / "escape_fhir" / "data" / "r4-model.json.gz"


@pytest.mark.parametrize(
    ("structure", "path", "name", "element_path", "type_code", "kind", "context"),
    [
        pytest.param(
            "Observation",
            "Observation",
            "valueQuantity",
            "Observation.value[x]",
            "Quantity",
            "complex",
            ("Quantity", "Quantity"),
            id="choice-complex",
        ),
        pytest.param(
            "Observation",
            "Observation",
            "valueDateTime",
            "Observation.value[x]",
            "dateTime",
            "primitive",
            ("dateTime", "dateTime"),
            id="choice-primitive-lower-first-letter",
        ),
        pytest.param(
            "Questionnaire",
            "Questionnaire.item",
            "item",
            "Questionnaire.item.item",
            "BackboneElement",
            "complex",
            ("Questionnaire", "Questionnaire.item"),
            id="content-reference",
        ),
        pytest.param(
            "Patient",
            "Patient",
            "contact",
            "Patient.contact",
            "BackboneElement",
            "complex",
            ("Patient", "Patient.contact"),
            id="inline-backbone",
        ),
        pytest.param(
            "Patient",
            "Patient",
            "name",
            "Patient.name",
            "HumanName",
            "complex",
            ("HumanName", "HumanName"),
            id="data-type",
        ),
        pytest.param(
            "Bundle",
            "Bundle.entry",
            "resource",
            "Bundle.entry.resource",
            "Resource",
            "resource",
            None,
            id="nested-resource",
        ),
        pytest.param("Narrative", "Narrative", "div", "Narrative.div", "xhtml", "xhtml", None, id="xhtml"),
        pytest.param(
            "Extension", "Extension", "url", "Extension.url", "uri", "primitive", ("uri", "uri"), id="extension-url"
        ),
    ],
)
def test_child_resolution(
    structure: str,
    path: str,
    name: str,
    element_path: str,
    type_code: str,
    kind: str,
    context: tuple[str, str] | None,
) -> None:
    ref = model().child(structure, path, name)
    assert ref is not None
    assert (ref.element.path, ref.type_code, ref.kind, ref.context) == (element_path, type_code, kind, context)


@pytest.mark.parametrize(
    ("type_name", "path", "expected"),
    [
        pytest.param("Patient", "", "Patient", id="root"),
        pytest.param("Patient", "name.given", "HumanName.given", id="across-data-type"),
        pytest.param("Questionnaire", "item.item.linkId", "Questionnaire.item.linkId", id="content-reference"),
        pytest.param("Observation", "valueQuantity.value", "Quantity.value", id="choice-then-type"),
        pytest.param("Patient", "birthDate.extension", "date.extension", id="primitive-extension"),
        pytest.param("Patient", "nope", None, id="unknown-element"),
        pytest.param("Patient", "valueString", None, id="choice-name-not-here"),
        pytest.param("NotAType", "id", None, id="unknown-type"),
    ],
)
def test_element_by_instance_path(type_name: str, path: str, expected: str | None) -> None:
    el = model().element(type_name, path)
    assert (el.path if el else None) == expected


@pytest.mark.parametrize(
    ("type_name", "path", "expected"),
    [
        pytest.param("Patient", "name", True, id="name-repeats"),
        pytest.param("Patient", "gender", False, id="gender-single"),
        pytest.param("Bundle", "entry.resource", False, id="entry-resource-single"),
        pytest.param("Questionnaire", "item.item", True, id="nested-items"),
    ],
)
def test_is_array(type_name: str, path: str, expected: bool) -> None:
    assert model().is_array(type_name, path) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Patient", True, id="Patient"),
        pytest.param("Bundle", True, id="Bundle"),
        pytest.param("Resource", False, id="abstract-Resource"),
        pytest.param("DomainResource", False, id="abstract-DomainResource"),
        pytest.param("HumanName", False, id="data-type"),
        pytest.param("MetadataResource", False, id="logical-model-left-out"),
        pytest.param("patient", False, id="case-sensitive"),
    ],
)
def test_is_resource_type(name: str, expected: bool) -> None:
    assert model().is_resource_type(name) is expected


JSON_KINDS = {
    "integer": "number",
    "positiveInt": "number",
    "unsignedInt": "number",
    "decimal": "number",
    "boolean": "boolean",
}
PRIMITIVES = [
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
]


@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitive_json_kind(name: str) -> None:
    info = model().primitive(name)
    assert info is not None
    assert info.json == JSON_KINDS.get(name, "string")
    assert (info.regex is None) == (name == "xhtml")


@pytest.mark.parametrize(
    ("type_name", "value", "ok"),
    [
        pytest.param("decimal", "1.50", True, id="decimal-trailing-zero"),
        pytest.param("decimal", "1.", False, id="decimal-dangling-point"),
        pytest.param("decimal", "1e-3", True, id="decimal-exponent"),
        pytest.param("integer", "-0", True, id="integer-minus-zero"),
        pytest.param("integer", "01", False, id="integer-leading-zero"),
        pytest.param("positiveInt", "0", False, id="positiveInt-zero"),
        pytest.param("date", "2024-02", True, id="date-partial"),
        pytest.param("dateTime", "2024-02-30T10:00:00.1234+05:45", True, id="dateTime-odd-offset"),
        pytest.param("dateTime", "2024-02-01T10:00", False, id="dateTime-no-seconds"),
        pytest.param("instant", "2024-02-01", False, id="instant-needs-time"),
        pytest.param("code", " x", False, id="code-leading-space"),
        pytest.param("id", "a" * 65, False, id="id-too-long"),
    ],
)
def test_primitive_regex(type_name: str, value: str, ok: bool) -> None:
    info = model().primitive(type_name)
    assert info is not None
    assert info.matches(value) is ok


def test_binding_constraints_and_flags() -> None:
    gender = model().element("Patient", "gender")
    assert gender is not None and gender.binding is not None
    assert gender.binding.strength == "required"
    assert gender.binding.value_set == "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"
    root = model().element("Patient")
    assert root is not None
    keys = {c.key for c in root.constraints}
    assert {"dom-2", "dom-3", "dom-4", "dom-5", "dom-6"} <= keys
    assert all(c.expression for c in root.constraints)
    active = model().element("Patient", "active")
    assert active is not None and active.is_modifier and active.is_summary
    obs = model().element("Observation", "code")
    assert obs is not None and obs.binding is not None and obs.binding.strength == "example"


def test_reference_targets_are_type_names() -> None:
    subject = model().element("Observation", "subject")
    assert subject is not None
    assert subject.types[0].code == "Reference"
    assert subject.types[0].target_profiles == ("Patient", "Group", "Device", "Location")


def test_required_value_set_codes() -> None:
    codes = model().required_codes("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
    assert codes == {"http://hl7.org/fhir/administrative-gender": frozenset({"male", "female", "other", "unknown"})}
    status = model().required_codes("http://hl7.org/fhir/ValueSet/request-status")
    assert status is not None and "active" in status["http://hl7.org/fhir/request-status"]
    assert model().required_codes("http://hl7.org/fhir/ValueSet/mimetypes") is None
    assert "http://hl7.org/fhir/ValueSet/mimetypes" in model().unexpanded_value_sets


def test_every_resource_type_has_ordered_elements() -> None:
    m = model()
    resources = [n for n in m.type_names() if m.is_resource_type(n)]
    assert len(resources) >= 145  # R4 has 145; the 4.0.1 package build adds a few (e.g. SubscriptionStatus)
    for name in resources:
        sd = m.structure(name)
        assert sd is not None and sd.elements[0].path == name
        assert [e.name for e in m.children(name, name)][:3] == ["id", "meta", "implicitRules"]


def test_model_file_is_compact() -> None:
    assert DATA.stat().st_size < 2_000_000


@pytest.mark.skipif(not (SHARED / "fhir" / "r4-core").is_dir(), reason=f"{SHARED}/fhir/r4-core not present")
def test_committed_model_matches_generator(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_r4_model", REPO / "scripts" / "generate_r4_model.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules["generate_r4_model"] = generator
    spec.loader.exec_module(generator)
    out = tmp_path / "model.json.gz"
    generator.write(generator.build(SHARED / "fhir" / "r4-core"), out)
    assert out.read_bytes() == DATA.read_bytes()
