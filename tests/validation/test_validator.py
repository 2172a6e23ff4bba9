"""The validator's front door and whole-file verdicts: every example validates; results carry
OperationOutcomes (STYLE.md habits 2 and 4). UK Core's examples are judged in test_reference_verdicts.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from escape_fhir.fhir.formats import parse
from escape_fhir.validation import ValidationResult, validate
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from tests.helpers import EXAMPLES, fhir_examples
from tests.validation.validator_cases import validator

FHIR_EXAMPLES = fhir_examples(".json", ".xml")


def _errors(result: ValidationResult) -> list[str]:
    return [f"{i.location}: {i.message}" for i in result.errors]


@pytest.mark.parametrize("path", FHIR_EXAMPLES, ids=[str(p.relative_to(EXAMPLES)) for p in FHIR_EXAMPLES])
def test_every_example_validates(path: Path) -> None:
    assert _errors(validator().validate(parse(path.read_bytes()))) == []


@pytest.mark.parametrize("path", FHIR_EXAMPLES[:2], ids=[p.name for p in FHIR_EXAMPLES[:2]])
def test_examples_validate_with_the_default_definitions(path: Path) -> None:
    """Without UK Core at hand, profiles that cannot be resolved are warnings, never errors."""
    result = validate(parse(path.read_bytes()))
    assert _errors(result) == []


def test_result_outcome_lists_every_issue_with_its_location() -> None:
    result = validate({"resourceType": "Patient", "gender": "f", "birthDate": "1958-13-01"})
    outcome = result.outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"], i["expression"]) for i in outcome["issue"] if i["severity"] == "error"] == [
        ("error", "code-invalid", ["Patient.gender"]),
        ("error", "value", ["Patient.birthDate"]),
    ]
    assert not result.ok


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param({"id": "x"}, ("error", "structure", "resourceType is missing", "Resource"), id="no-resource-type"),
        pytest.param(
            {"resourceType": "Pateint"},
            ("error", "not-supported", "unknown resource type 'Pateint'", "Pateint"),
            id="typo",
        ),
        pytest.param(
            ["Patient"], ("error", "structure", "a resource must be a JSON object", "Resource"), id="not-object"
        ),
    ],
)
def test_not_a_resource(resource: Any, expected: tuple[str, str, str, str]) -> None:
    issues = validate(resource).issues
    assert [(i.severity, i.code, i.message, i.location) for i in issues] == [expected]


def test_validator_with_other_definitions_and_explicit_profile() -> None:
    own = Validator(default_definitions([str(Path(__file__).parent / "cases" / "profiles")], package_cache=False))
    patient = {"resourceType": "Patient", "gender": "female"}
    found = own.validate(patient, ["http://example.org/fhir/StructureDefinition/test-patient-named"])
    assert [(i.code, i.location) for i in found.errors] == [("required", "Patient.name")]
    assert own.compiled("http://example.org/fhir/StructureDefinition/test-patient-named") is not None


def test_compiled_profiles_are_cached() -> None:
    url = "http://hl7.org/fhir/StructureDefinition/Patient"
    assert validator().compiled(url) is validator().compiled(url)
