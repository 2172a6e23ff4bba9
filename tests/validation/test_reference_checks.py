"""The checks that bring our verdicts to the HL7 reference validator's (issue 11): display names, the R4
vital-signs profiles selected by LOINC code, UCUM codes, absolute fullUrls, Questionnaires found where the
response is. Each with a passing copy and one-defect copies of an example, validated end to end; the UK Core
variants skip without ../shared.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.questionnaires import all_questionnaires
from escape_fhir.validation import validate
from escape_fhir.validation.api import Validator
from escape_fhir.validation.coredata import core_terminology
from escape_fhir.validation.definitions import Definitions, default_definitions
from escape_fhir.validation.display import check_display
from escape_fhir.validation.sources import BaseR4Source, MemorySource
from escape_fhir.validation.ucum import ucum_problem
from tests.helpers import EXAMPLES, shared

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def errors(resource: Json, validator: Validator | None = None) -> list[tuple[str, str]]:
    result = validator.validate(resource) if validator is not None else validate(resource)
    return [(i.location, i.message) for i in result.errors]


def example(name: str) -> Json:
    found: Json = json.loads((EXAMPLES / "resources" / name).read_text())
    return found


def ukcore_validator() -> Validator:
    return Validator(default_definitions([str(shared("fhir", "ukcore"))], package_cache=False))


def ukcore_example(name: str) -> Json:
    found: Json = parse(shared("fhir", "ukcore", "examples", name).read_bytes())
    return found


# ---- display names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        pytest.param("Survey", None, id="exact"),
        pytest.param("SURVEY", None, id="case-ignored"),
        pytest.param("Surveys", "Wrong Display Name 'Surveys'", id="wrong"),
        pytest.param("Survey ", "Wrong whitespace in Display Name 'Survey '", id="whitespace"),
    ],
)
def test_display_of_an_r4_code_system(display: str, expected: str | None) -> None:
    obs = example("StartBackScore-91352-5.json")
    obs["category"][0]["coding"][0]["display"] = display
    found = [e for e in errors(obs) if "Display Name" in e[1]]
    if expected is None:
        assert found == []
    else:
        [(location, message)] = found
        assert location == "Observation.category[0].coding[0].display"
        assert message.startswith(expected) and f"{CATEGORY}#survey. Valid display is 'Survey'" in message


def test_display_of_our_own_code_system() -> None:
    qr = example("StartBackResponse-startback.json")
    assert errors(qr) == []
    qr["item"][0]["answer"][0]["valueCoding"]["display"] = "Agreed"
    assert errors(qr) == [
        (
            "QuestionnaireResponse.item[0].answer[0].valueCoding.display",
            "Wrong Display Name 'Agreed' for https://w3id.org/escape-fhir/CodeSystem/startback-answer#agree. "
            "Valid display is 'Agree' (for the language(s) 'en')",
        )
    ]


def test_displays_of_codes_we_cannot_know_are_not_checked() -> None:
    obs = example("StartBackScore-91352-5.json")
    obs["code"]["coding"][0]["display"] = "anything at all"  # LOINC: a terminology server's business
    obs["category"][0]["coding"][0]["code"] = "not-a-code"  # a code the code system lacks: no display to compare
    assert [e for e in errors(obs) if "Display Name" in e[1]] == []


def _terms(code_system: Json) -> Definitions:
    return Definitions([MemorySource([code_system]), BaseR4Source()])


CS: Json = {
    "resourceType": "CodeSystem",
    "url": "https://example.org/cs",
    "status": "active",
    "content": "complete",
    "concept": [
        {
            "code": "a",
            "display": "Alpha",
            "designation": [
                {"language": "en-GB", "value": "First letter"},
                {"value": "A (no language)"},
                {"language": "de", "value": "Erster Buchstabe"},
            ],
            "concept": [{"code": "a1", "display": "Alpha one"}],
        }
    ],
}


@pytest.mark.parametrize(
    ("code", "display", "ok"),
    [
        pytest.param("a", "Alpha", True, id="display"),
        pytest.param("a", "first letter", True, id="english-designation-any-case"),
        pytest.param("a", "A (no language)", True, id="designation-without-language"),
        pytest.param("a", "Erster Buchstabe", False, id="german-designation-does-not-count"),
        pytest.param("a1", "Alpha one", True, id="nested-concept"),
        pytest.param("a1", "Alpha  one", False, id="nested-concept-whitespace"),
    ],
)
def test_display_rules(code: str, display: str, ok: bool) -> None:
    coding = {"system": CS["url"], "code": code, "display": display}
    found = check_display(_terms(CS), coding, "Coding")
    assert (found == []) is ok
    if not ok:
        assert found[0].location == "Coding.display" and found[0].severity == "error"


def test_code_systems_in_another_language_or_not_whole_are_not_checked() -> None:
    coding = {"system": CS["url"], "code": "a", "display": "Beta"}
    assert check_display(_terms(CS), coding, "Coding") != []
    assert check_display(_terms({**CS, "language": "de"}), coding, "Coding") == []
    assert check_display(_terms({**CS, "content": "fragment"}), coding, "Coding") == []


def test_uk_core_wrong_display_and_its_fix() -> None:
    validator = ukcore_validator()
    appointment = ukcore_example("Extension-UKCore-DeliveryChannel-Example.xml")
    [(location, message)] = errors(appointment, validator)
    assert location == "Appointment.extension[0].valueCodeableConcept.coding[0].display"
    assert "Valid display is 'In-person'" in message
    appointment["extension"][0]["valueCodeableConcept"]["coding"][0]["display"] = "In-person"
    assert errors(appointment, validator) == []


# ---- R4 vital signs ----------------------------------------------------------------------------------------


def vital_sign(loinc: str, value: Json | None = None) -> Json:
    """An Observation as a monitoring system would send it, claiming no profile."""
    obs: Json = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-20T10:00:00Z",
    }
    if value is not None:
        obs["valueQuantity"] = value
    return obs


def quantity(value: float, code: str, system: str = UCUM) -> Json:
    return {"value": value, "unit": code, "system": system, "code": code}


@pytest.mark.parametrize(
    ("loinc", "good", "bad", "message"),
    [
        pytest.param("8867-4", "/min", "{beats}/min", "but is fixed to '/min' in the profile", id="heart-rate"),
        pytest.param("9279-1", "/min", "{Breaths}/min", "StructureDefinition/resprate|4.0.1", id="resp-rate"),
        pytest.param("39156-5", "kg/m2", "kg", "Value is 'kg' but is fixed to 'kg/m2'", id="bmi"),
        pytest.param("2708-6", "%", "%{saturation}", "fixed to '%'", id="oxygen-saturation"),
        pytest.param("8302-2", "cm", "m", "not found in the value set 'Body Length Units'", id="body-height"),
        pytest.param("9843-4", "[in_i]", "mm", "'Body Length Units'", id="head-circumference"),
        pytest.param("29463-7", "[lb_av]", "mg", "'Body Weight Units'", id="body-weight"),
        pytest.param("8310-5", "Cel", "K", "'Body Temperature Units'", id="body-temperature"),
    ],
)
def test_vital_sign_units(loinc: str, good: str, bad: str, message: str) -> None:
    assert errors(vital_sign(loinc, quantity(70, good))) == []
    [(location, found)] = errors(vital_sign(loinc, quantity(70, bad)))
    assert location == "Observation.valueQuantity.code" and message in found


def test_blood_pressure_components() -> None:
    obs = vital_sign("85354-9")
    obs["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": quantity(120, "mm[Hg]"),
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": quantity(80, "mm[Hg]"),
        },
    ]
    assert errors(obs) == []
    obs["component"][1]["valueQuantity"] = quantity(80, "kPa")
    [(location, message)] = errors(obs)
    assert location == "Observation.component[1].valueQuantity.code"
    assert "fixed to 'mm[Hg]' in the profile http://hl7.org/fhir/StructureDefinition/bp|4.0.1" in message


@pytest.mark.parametrize(
    ("edit", "location", "fragment"),
    [
        pytest.param(lambda o: o.pop("category"), "Observation.category", "vital-signs", id="no-category"),
        pytest.param(lambda o: o.pop("subject"), "Observation.subject", "a subject is required", id="no-subject"),
        pytest.param(lambda o: o.pop("effectiveDateTime"), "Observation.effective", "effective", id="no-effective"),
        pytest.param(lambda o: o.pop("valueQuantity"), "Observation", "vs-2", id="no-value"),
        pytest.param(
            lambda o: o["valueQuantity"].pop("system"), "Observation.valueQuantity.system", "fixed to", id="no-ucum"
        ),
        pytest.param(
            lambda o: o["valueQuantity"].pop("value"),
            "Observation.valueQuantity.value",
            "minimum",
            id="no-value-number",
        ),
    ],
)
def test_vital_signs_base_profile(edit: Any, location: str, fragment: str) -> None:
    obs = vital_sign("8867-4", quantity(72, "/min"))
    edit(obs)
    assert [loc for loc, message in errors(obs) if fragment in message] == [location]


def test_a_panel_with_members_needs_no_value() -> None:
    panel = vital_sign("85353-1")
    assert [m for _, m in errors(panel) if "vs-2" in m] != []
    panel["hasMember"] = [{"reference": "Observation/heart-rate"}]
    assert errors(panel) == []


def test_other_observations_are_not_vital_signs() -> None:
    obs = vital_sign("2345-7", quantity(5.4, "mmol/L"))  # glucose: any valid unit, no vital-signs rules
    obs.pop("category")
    assert errors(obs) == []


def test_vital_signs_inside_a_bundle() -> None:
    obs = vital_sign("39156-5", quantity(31.2, "kg"))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:8f0c0b6e-0a51-4c3e-9a55-2f1f8d0c5b11", "resource": obs}],
    }
    [(location, _)] = errors(bundle)
    assert location == "Bundle.entry[0].resource.valueQuantity.code"


def test_uk_core_body_height_in_metres_and_its_fix() -> None:
    validator = ukcore_validator()
    obs = ukcore_example("UKCore-Observation-VitalSigns-BodyHeight-Example.xml")
    [(location, _)] = errors(obs, validator)
    assert location == "Observation.valueQuantity.code"
    obs["valueQuantity"].update(value=164, unit="cm", code="cm")
    assert errors(obs, validator) == []


# ---- UCUM ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["mg/dL", "mmol/L", "10*9/L", "{score}", "mm[Hg]", "kg/m2", "/min", "umol/L", "U/L"])
def test_valid_ucum_codes(code: str) -> None:
    assert ucum_problem(code) is None
    assert errors(vital_sign("2345-7", quantity(1, code))) == []


@pytest.mark.parametrize("code", ["Kg", "kg/m^2", "beats/min", "mmHg", "mm Hg", "kgm"])
def test_invalid_ucum_codes(code: str) -> None:
    assert ucum_problem(code) is not None
    [(location, message)] = errors(vital_sign("2345-7", quantity(1, code)))
    assert location == "Observation.valueQuantity.code" and "is not a valid UCUM code" in message


def test_codes_of_other_systems_are_not_ucum() -> None:
    assert errors(vital_sign("2345-7", quantity(1, "mmHg", system="http://example.org/units"))) == []


def test_ucum_in_other_quantity_types() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "onsetAge": {"value": 50, "system": UCUM, "code": "years"},
    }
    [(location, _)] = [e for e in errors(condition) if "UCUM" in e[1]]
    assert location == "Condition.onsetAge.code"
    condition["onsetAge"]["code"] = "a"
    assert [e for e in errors(condition) if "UCUM" in e[1]] == []


def test_common_ucum_codes_taken_without_parsing_are_valid() -> None:
    """The fast path's codes (R4 ucum-common) parse with the library, except annotations with a space."""
    from ucumvert import InvalidUcumError, get_ucum_parser, parse_ucum

    parser = get_ucum_parser()
    refused = []
    for code in sorted(core_terminology().ucum_common):
        try:
            parse_ucum(code, parser)
        except InvalidUcumError:
            refused.append(code)
    assert all(" " in code for code in refused), refused


# ---- fullUrl -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full_url", "ok"),
    [
        pytest.param("urn:uuid:8f0c0b6e-0a51-4c3e-9a55-2f1f8d0c5b11", True, id="uuid"),
        pytest.param("urn:oid:1.2.3.4", True, id="oid"),
        pytest.param("https://example.org/fhir/Observation/o1", True, id="absolute-url"),
        pytest.param("Observation/o1", False, id="relative"),
        pytest.param("o1", False, id="bare-id"),
    ],
)
def test_full_url_must_be_absolute(full_url: str, ok: bool) -> None:
    obs = example("StartBackScore-91352-5.json")
    obs["id"] = "o1"
    obs.pop("derivedFrom")
    obs["subject"] = {"display": "a patient"}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": full_url, "resource": obs}]}
    found = [e for e in errors(bundle) if "fullUrl" in e[1]]
    expected = [] if ok else [("Bundle.entry[0].fullUrl", f"The fullUrl must be an absolute URL (not {full_url!r})")]
    assert found == expected


# ---- Questionnaires found where the response is ------------------------------------------------------------

ELSEWHERE = "https://example.org/fhir/Questionnaire/startback-copy"


def startback_copy() -> Json:
    """The project's STarT Back Questionnaire under a URL no loaded package holds."""
    original = next(q for q in all_questionnaires() if q["url"].endswith("/startback"))
    questionnaire: Json = copy.deepcopy(original)
    questionnaire.update(id="sb", url=ELSEWHERE, version="2.0.0")
    return questionnaire


def response_to(canonical: str, wrong_answer: bool) -> Json:
    qr = example("StartBackResponse-startback.json")
    qr.pop("meta")
    qr["questionnaire"] = canonical
    if wrong_answer:
        qr["item"][0]["answer"][0]["valueCoding"] = {"system": "https://example.org/cs", "code": "maybe"}
    return qr


def answer_checked(issues: list[tuple[str, str]]) -> bool:
    return any("is not an answerOption" in message for _, message in issues)


def _all(resource: Json) -> list[tuple[str, str]]:
    return [(i.location, i.message) for i in validate(resource).issues]


def unknown_warning(issues: list[tuple[str, str]]) -> bool:
    return any("is unknown, so the answers were not checked" in message for _, message in issues)


def test_contained_questionnaire_by_id() -> None:
    qr = response_to("#sb", wrong_answer=True)
    qr["contained"] = [startback_copy()]
    found = _all(qr)
    assert answer_checked(found) and not unknown_warning(found)


def test_questionnaire_in_the_same_bundle_by_canonical_and_version() -> None:
    for canonical in (ELSEWHERE, f"{ELSEWHERE}|2.0.0"):
        qr = response_to(canonical, wrong_answer=True)
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:5c1f2a8e-7d4b-4f0e-b1b5-3f9a6d2e8c10", "resource": startback_copy()},
                {"fullUrl": "urn:uuid:9d2e3b4c-1a5f-4e6d-8c7b-2a1f0e9d8c7b", "resource": qr},
            ],
        }
        found = _all(bundle)
        assert answer_checked(found) and not unknown_warning(found), canonical


def test_another_version_is_not_the_questionnaire() -> None:
    qr = response_to(f"{ELSEWHERE}|9.9.9", wrong_answer=True)
    qr["contained"] = [startback_copy()]
    found = _all(qr)
    assert unknown_warning(found) and not answer_checked(found)


def test_questionnaire_of_a_loaded_package_by_canonical_and_version() -> None:
    canonical = "https://w3id.org/escape-fhir/Questionnaire/startback"
    assert answer_checked(_all(response_to(f"{canonical}|1.0.0", wrong_answer=True)))
    assert not answer_checked(_all(response_to(f"{canonical}|1.0.0", wrong_answer=False)))
    assert unknown_warning(_all(response_to(f"{canonical}|0.9", wrong_answer=True)))


def test_warning_only_when_no_questionnaire_is_found() -> None:
    found = _all(response_to(ELSEWHERE, wrong_answer=True))
    assert unknown_warning(found) and not answer_checked(found)
