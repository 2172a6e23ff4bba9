"""The server's validator loads the FHIR packages named in its settings (e.g. UK Core), once per app."""

from __future__ import annotations

import json

from tests.api.conftest import MakeClient, example, message_headers
from tests.helpers import shared

UKCORE_PATIENT = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"


def _patient() -> bytes:
    bundle = json.loads(example("knee-gp"))
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["meta"]["profile"] == [UKCORE_PATIENT]
    return json.dumps(patient).encode()


def _unknown_profile_warnings(outcome: dict[str, object]) -> list[object]:
    issues = outcome["issue"]
    assert isinstance(issues, list)
    return [i for i in issues if UKCORE_PATIENT in i.get("diagnostics", "") and "unknown" in i.get("diagnostics", "")]


def test_uk_core_profiles_are_checked_only_when_the_package_is_configured(make_client: MakeClient) -> None:
    ukcore = shared("fhir", "ukcore")
    headers = {"Content-Type": "application/fhir+json"}
    without = make_client().post("/Patient/$validate", content=_patient(), headers=headers)
    with_package = make_client(packages=[str(ukcore)]).post("/Patient/$validate", content=_patient(), headers=headers)
    assert without.status_code == with_package.status_code == 200
    assert _unknown_profile_warnings(without.json()), without.json()
    assert _unknown_profile_warnings(with_package.json()) == []


def test_uk_core_binding_refuses_a_referral_at_validation_with_the_package(make_client: MakeClient) -> None:
    ukcore = shared("fhir", "ukcore")
    bundle = json.loads(example("knee-gp"))
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    # UK Core fixes the NHS number slice's verification extension to a required value set (01-08 / NI).
    coding = patient["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]
    coding["code"] = "99"
    body = json.dumps(bundle).encode()
    accepted = make_client().post("/$process-message", content=body, headers=message_headers())
    refused = make_client(packages=[str(ukcore)]).post("/$process-message", content=body, headers=message_headers())
    assert refused.status_code == 400, refused.text
    locations = [loc for issue in refused.json()["issue"] for loc in issue.get("expression", [])]
    assert any(loc.startswith("Bundle.entry[2].resource.identifier[0].extension[0]") for loc in locations), locations
    # Without UK Core the validator has no binding for it; the referral reader still refuses the code (422).
    assert accepted.status_code == 422, accepted.text
