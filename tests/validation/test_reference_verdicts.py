"""Our verdicts on the 211 UK Core 2.0.0 examples against the HL7 reference validator's.

The reference's verdicts (org.hl7.fhir core 6.10.2, R4 4.0.1 and UK Core 2.0.0 loaded, no terminology server)
are written down here as facts: the 11 examples it fails, each error as the location in our notation and the
gist of what it says; the other 200 pass. Where our verdict differs, :data:`DIFFERENCES` says what we find
instead and why; docs/validation.md carries the same table. The test fails when any example's errors drift
from this: a new false error, a missed one, or a difference that has gone (then remove its row, here and in
the docs).
"""

from __future__ import annotations

import re
from pathlib import Path

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.formats import parse
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from tests.helpers import ROOT, shared

Errors = list[tuple[str, str]]

_WRONG_DISPLAY = (
    "Wrong Display Name 'In person' for https://fhir.hl7.org.uk/CodeSystem/UKCore-DeliveryChannel#In-person"
)
_NEWS2_FULL_URLS = [
    "21344a45-2660-45d1-9fb3-49e54d14b662",
    "dbf6ec86-ebd7-4490-8586-596328519ed2",
    "f0d26102-3a50-4993-9203-6089b625fc2f",
    "1a1273f4-dd78-4bb4-bb98-ed6456caa2a2",
    "c756fd32-f04e-45a9-b02f-2461ed53c736",
    "5a1625e8-938e-4c19-9d3e-a235bfb4b37d",
    "638c6821-eb51-4f1b-b8c0-5269d1df9b7c",
    "fc6c6fa5-d8e8-4634-a19a-985325077cb2",
]

#: The reference's errors on the examples it fails (../shared/docs/reference-verdicts.md), as (location, gist).
REFERENCE_FAILS: dict[str, Errors] = {
    "Extension-UKCore-CodingSCT-IllicitDrugs-Example.xml": [("Observation.text", "out of order")],
    "Extension-UKCore-ConditionEpisode-Example.xml": [
        ("Condition.extension[0]", "allows for the types [CodeableConcept] but found type code"),
        ("Condition.extension[0]", "Extension.value[x]: max allowed = 1, but found 2"),
    ],
    "Extension-UKCore-DeliveryChannel-Example.xml": [
        ("Appointment.extension[0].valueCodeableConcept.coding[0].display", _WRONG_DISPLAY)
    ],
    "UKCore-Appointment-OrthopaedicSurgery-Example.xml": [
        ("Appointment.extension[1].valueCodeableConcept.coding[0].display", _WRONG_DISPLAY)
    ],
    "UKCore-Bundle-NEWS2Observations-Example.xml": [
        ("Bundle.entry[1].resource.valueQuantity.code", "Value is '{Breaths}/min' but is fixed to '/min'"),
        ("Bundle.entry[2].resource.valueQuantity.code", "Value is '{beats}/min' but is fixed to '/min'"),
        *[
            (f"Bundle.entry[{i}].fullUrl", f"The fullUrl must be an absolute URL (not 'Observation/{uuid}')")
            for i, uuid in enumerate(_NEWS2_FULL_URLS)
        ],
    ],
    "UKCore-DiagnosticReport-ECG-Example.xml": [
        ("DiagnosticReport.category[0].coding[0].display", "Wrong whitespace in Display Name")
    ],
    "UKCore-HealthcareService-OrthopaedicService-Example.xml": [
        (
            "HealthcareService.serviceProvisionCode[0].coding[0].display",
            "Wrong Display Name 'This service is available for no patient cost.' for "
            "http://terminology.hl7.org/CodeSystem/service-provision-conditions#free. Valid display is 'Free'",
        )
    ],
    "UKCore-Observation-Lab-Albumin-Example.xml": [("Observation.meta", "out of order")],
    "UKCore-Observation-VitalSigns-BodyHeight-Example.xml": [
        (
            "Observation.valueQuantity.code",
            "The value provided ('m') was not found in the value set 'Body Length Units'",
        )
    ],
    "UKCore-Questionnaire-EOLPlan-Example.xml": [
        ("Questionnaire.item[0].item[0].item[0].extension[0]", "out of order")
    ],
    "UKCore-QuestionnaireResponse-EOLPlan-Example.xml": [
        ("QuestionnaireResponse.item[0].item[0].item[0].answer[0]", "is not in the options value set")
    ],
}

#: Where we differ from the reference: what we find instead, and why (the table in docs/validation.md).
DIFFERENCES: dict[str, tuple[Errors, str]] = {
    "Extension-UKCore-CodingSCT-IllicitDrugs-Example.xml": ([], "XML element order is not checked yet (issue 11, H1)"),
    "UKCore-Observation-Lab-Albumin-Example.xml": ([], "XML element order is not checked yet (issue 11, H1)"),
    "UKCore-Questionnaire-EOLPlan-Example.xml": ([], "XML element order is not checked yet (issue 11, H1)"),
    "Extension-UKCore-ConditionEpisode-Example.xml": (
        [("Condition.extension[0].valueCodeableConcept", "only one of value[x] is allowed")],
        "same defect, found by the reader: the file is refused as unreadable",
    ),
    "UKCore-DiagnosticReport-ECG-Example.xml": (
        [],
        "terminology: v2-0074 is not held locally (the R4 definitions we ship carry no v2 tables)",
    ),
    "UKCore-QuestionnaireResponse-EOLPlan-Example.xml": (
        [],
        "terminology server: SNOMED CT membership of the answerValueSet cannot be known locally",
    ),
    "UKCore-Patient-BabyPatient-Example.xml": (
        [("Patient.identifier[0].value", "fails the Modulus 11 check")],
        "stricter than the reference: the NHS number's check digit is wrong",
    ),
}


def _validator() -> Validator:
    return Validator(default_definitions([str(shared("fhir", "ukcore"))], package_cache=False))


def our_errors(validator: Validator, path: Path) -> Errors:
    """Our errors on one example as (location, message); a file the reader refuses gives its one error."""
    try:
        resource = parse(path.read_bytes())
    except FhirFormatError as exc:
        return [(exc.location, str(exc))]
    return [(i.location, i.message) for i in validator.validate(resource).errors]


def matches(found: Errors, expected: Errors) -> bool:
    """Each expected (location, gist) is one error found at that location saying it, and nothing else is found."""
    left = list(found)
    for location, gist in expected:
        hit = next((f for f in left if f[0] == location and gist in f[1]), None)
        if hit is None:
            return False
        left.remove(hit)
    return not left


def test_the_reference_table_is_the_documented_one() -> None:
    assert len(REFERENCE_FAILS) == 11
    assert set(DIFFERENCES) - set(REFERENCE_FAILS) == {"UKCore-Patient-BabyPatient-Example.xml"}


def test_our_verdicts_on_the_uk_core_examples_are_the_reference_table() -> None:
    files = sorted(shared("fhir", "ukcore", "examples").glob("*.xml"))
    assert len(files) == 211
    validator = _validator()
    drift: dict[str, Errors] = {}
    for path in files:
        expected = DIFFERENCES[path.name][0] if path.name in DIFFERENCES else REFERENCE_FAILS.get(path.name, [])
        found = our_errors(validator, path)
        if not matches(found, expected):
            drift[path.name] = found
    assert drift == {}


def test_the_docs_list_every_difference() -> None:
    text = (ROOT / "docs" / "validation.md").read_text()
    section = text.split("## UK Core 2.0.0 examples", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([^`]+\.xml)` \|", section, flags=re.MULTILINE))
    assert listed == set(DIFFERENCES)


def test_matching_needs_every_error_and_no_other() -> None:
    expected = [("A.b", "wrong")]
    assert matches([("A.b", "it is wrong")], expected)
    assert not matches([], expected)
    assert not matches([("A.c", "it is wrong")], expected)
    assert not matches([("A.b", "it is wrong"), ("A.d", "more")], expected)
