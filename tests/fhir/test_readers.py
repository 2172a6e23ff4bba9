"""Bundle -> referral: an engine's Bundle that this project did not write, and what cannot be mapped."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.domain import assess, load_referral
from escape_fhir.errors import MappingError
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.readers import read_referral
from tests.helpers import EXAMPLES, shared

DATA = Path(__file__).parent / "data"
Json = dict[str, Any]


def engine_bundle() -> Json:
    return json.loads((DATA / "engine-back-referral.json").read_text())


def knee_bundle() -> Json:
    referral = load_referral((EXAMPLES / "referrals/knee-gp.json").read_bytes())
    return translate(referral, "message", timestamp="2026-11-20T09:30:00Z")


def test_engine_bundle_with_startback_only_as_observations() -> None:
    result = read_referral(engine_bundle())
    r = result.referral
    assert r.pathway.value == "back"  # told by the LOINC-coded STarT Back result alone
    assert r.source.value == "gp"  # from the SNOMED CT GP role of the PractitionerRole
    assert r.referral_date.isoformat() == "2026-11-20"
    assert r.patient.nhs_number == "9990000069"
    assert r.patient.name.given == ["Robert", "James"]  # the official name, not the usual one
    assert r.referrer is not None and r.referrer.registration is not None
    assert (r.referrer.role, r.referrer.registration.number) == ("gp", "7123456")
    assert r.receiver is not None and (r.receiver.ods_code, r.receiver.service_id) == ("RVJ", "2000093114")
    assert r.start_back is None
    assert r.start_back_result is not None
    assert (r.start_back_result.total, r.start_back_result.psychosocial, r.start_back_result.risk) == (5, 2, "medium")
    assert [d.code for d in r.diagnoses] == ["278860009"]
    # BaRS senders still use the retired UK Core verification codes: accepted, with a warning.
    assert r.patient.nhs_number_verification_status == "01"
    [warning] = result.warnings
    assert warning.severity == "warning"
    assert warning.location == "Bundle.entry[2].resource.identifier[0].extension[0].valueCodeableConcept.coding[0]"
    assert "number-present-and-verified" in warning.message


def test_engine_bundle_with_a_loinc_keyed_startback_response() -> None:
    bundle = engine_bundle()
    answers = ["agree", "agree", "disagree", "disagree", "agree", "agree", "agree", "agree", "very-much"]
    items = [
        {"linkId": code, "answer": [{"valueString": answer.replace("-", " ").title()}]}
        for code, answer in zip(
            ["91340-0", "91341-8", "91342-6", "91343-4", "91344-2", "91345-9", "91346-7", "91347-5", "91348-3"],
            answers,
            strict=True,
        )
    ]
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr-1",
        "questionnaire": "http://example.org/Questionnaire/startback-local",
        "status": "completed",
        "subject": {"reference": "urn:uuid:0f7a3b1e-6c2d-4e8f-9a10-b2c3d4e5f603"},
        "item": [{"linkId": "startback", "item": items}],
    }
    url = "urn:uuid:7c4d0b1a-0000-4000-8000-000000000001"
    bundle["entry"] = [*bundle["entry"][:9], {"fullUrl": url, "resource": response}]
    bundle["entry"][1]["resource"]["supportingInfo"] = [{"reference": url}]
    r = read_referral(bundle).referral
    assert r.start_back is not None
    assert [r.start_back[c] for c in sorted(r.start_back)] == answers
    assert r.effective_start_back() is not None
    assert r.effective_start_back().risk == "high"  # type: ignore[union-attr]


def _entry_of(bundle: Json, resource_type: str) -> int:
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == resource_type)


def _set(resource_type: str, key: str, value: Any) -> Callable[[Json], None]:
    def change(bundle: Json) -> None:
        bundle["entry"][_entry_of(bundle, resource_type)]["resource"][key] = value

    return change


def _drop(resource_type: str, key: str) -> Callable[[Json], None]:
    def change(bundle: Json) -> None:
        del bundle["entry"][_entry_of(bundle, resource_type)]["resource"][key]

    return change


def _searchset(bundle: Json) -> None:
    bundle["type"] = "searchset"


def _swap_first_two(bundle: Json) -> None:
    bundle["entry"][0], bundle["entry"][1] = bundle["entry"][1], bundle["entry"][0]


def _bad_nhs_number(bundle: Json) -> None:
    bundle["entry"][_entry_of(bundle, "Patient")]["resource"]["identifier"][0]["value"] = "9876544321"


def _unknown_verification(bundle: Json) -> None:
    ident = bundle["entry"][_entry_of(bundle, "Patient")]["resource"]["identifier"][0]
    ident["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "99"


def _two_service_requests(bundle: Json) -> None:
    bundle["type"] = "collection"
    del bundle["entry"][0]
    bundle["entry"].append(copy.deepcopy(bundle["entry"][0]) | {"fullUrl": "urn:uuid:0000"})


def _device_requester(bundle: Json) -> None:
    device_url = "urn:uuid:11111111-2222-4333-8444-555555555555"
    bundle["entry"].append({"fullUrl": device_url, "resource": {"resourceType": "Device", "id": "d1"}})
    bundle["entry"][_entry_of(bundle, "ServiceRequest")]["resource"]["requester"] = {"reference": device_url}


# Refused: not a referral we can identify (change, location with the entry index of that type, message fragment).
BROKEN = [
    pytest.param(_set("Patient", "birthDate", "1889-01-01"), ("Patient", "birthDate"), "over 120 is not plausible",
                 id="patient aged 136 on the referral date"),
    pytest.param(_bad_nhs_number, ("Patient", "identifier[0].value"), "fails the NHS number check digit",
                 id="NHS number with a bad check digit"),
    pytest.param(_unknown_verification, ("Patient", "identifier[0].extension[0].valueCodeableConcept.coding[0]"),
                 "unknown NHS number verification status", id="unknown verification status"),
    pytest.param(_set("MessageHeader", "focus", [{"reference": "urn:uuid:gone"}]), ("MessageHeader", "focus[0]"),
                 "focus does not resolve", id="message focus does not resolve"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "where", "fragment"), BROKEN)
def test_what_cannot_be_mapped_is_located(
    change: Callable[[Json], None], where: tuple[str, str], fragment: str
) -> None:
    bundle = knee_bundle()
    change(bundle)
    with pytest.raises(MappingError) as info:
        read_referral(bundle)
    resource_type, path = where
    location = f"Bundle.entry[{_entry_of(bundle, resource_type)}].resource.{path}"
    assert [(i.location, fragment in i.message) for i in info.value.issues] == [(location, True)], info.value.issues


# Accepted, with a warning at the element (issue 8: missing or unclear detail never refuses a referral).
UNCLEAR = [
    pytest.param(_set("ServiceRequest", "subject", {"reference": "urn:uuid:nowhere"}), ("ServiceRequest", "subject"),
                 "the Bundle's only Patient", id="subject does not resolve"),
    pytest.param(_set("Patient", "gender", "unknown-ish"), ("Patient", "gender"), "patient.sex",
                 id="patient gender not a sex we know"),
    pytest.param(_drop("ServiceRequest", "authoredOn"), ("ServiceRequest", "authoredOn"), "dated from Bundle.timestamp",
                 id="service request without authoredOn"),
    pytest.param(_device_requester, ("ServiceRequest", "requester"), "a Device requester cannot be read",
                 id="device as requester"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "where", "fragment"), UNCLEAR)
def test_unclear_detail_is_a_warning_not_a_refusal(
    change: Callable[[Json], None], where: tuple[str, str], fragment: str
) -> None:
    bundle = knee_bundle()
    change(bundle)
    result = read_referral(bundle)
    resource_type, path = where
    location = f"Bundle.entry[{_entry_of(bundle, resource_type)}].resource.{path}"
    assert [w.location for w in result.warnings if fragment in w.message] == [location], result.warnings


@pytest.mark.parametrize(
    ("change", "location", "fragment"),
    [
        pytest.param(_searchset, "Bundle.type", "not one of message", id="searchset"),
        pytest.param(_swap_first_two, "Bundle.entry[0]", "must start with its MessageHeader", id="header not first"),
        pytest.param(_two_service_requests, "Bundle.entry", "exactly one ServiceRequest, found 2", id="two requests"),
    ],
)
def test_bundle_level_problems(change: Callable[[Json], None], location: str, fragment: str) -> None:
    bundle = knee_bundle()
    change(bundle)
    with pytest.raises(MappingError) as info:
        read_referral(bundle)
    [issue] = info.value.issues
    assert issue.location == location
    assert fragment in issue.message


def test_not_a_bundle() -> None:
    with pytest.raises(MappingError) as info:
        read_referral({"resourceType": "Patient"})
    assert info.value.issues[0].message == "expected a Bundle"


def test_every_problem_is_reported_at_once() -> None:
    bundle = knee_bundle()
    _bad_nhs_number(bundle)
    _set("Patient", "birthDate", "1889-01-01")(bundle)
    with pytest.raises(MappingError) as info:
        read_referral(bundle)
    assert len(info.value.issues) == 2


def test_bars_examples_are_judged_without_crashing() -> None:
    folder = shared("fhir", "bars", "Examples")
    verdicts = {}
    for path in sorted(folder.iterdir()):
        try:
            verdicts[path.name] = read_referral(parse(path.read_bytes())).referral.pathway.value
        except MappingError as exc:
            verdicts[path.name] = exc.issues[0].message
    # None of the BaRS examples is an ESCAPE-pain referral: each is refused with a reason, none crashes.
    referrals = [name for name in verdicts if name.startswith("REFREQ")]
    assert len(referrals) == 3
    assert all(verdicts[name].startswith("not an ESCAPE-pain referral") for name in referrals)
    assert verdicts["400BadRequest.json"] == "expected a Bundle"


def test_a_patient_without_birth_date_is_read_and_age_left_for_review() -> None:
    bundle = knee_bundle()
    _drop("Patient", "birthDate")(bundle)
    referral = read_referral(bundle).referral
    assert referral.patient.birth_date is None
    age = assess(referral).criteria[0]
    assert (age.code, age.outcome.value, age.reason) == ("age", "unknown", "birth date not stated")
