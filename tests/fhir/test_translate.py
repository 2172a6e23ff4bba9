"""Referral -> FHIR Bundles: the BaRS-aligned message, transaction and collection, and the way back."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from escape_fhir.domain import Referral, load_referral, score
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.formats import dump, parse
from escape_fhir.fhir.readers import read_referral
from escape_fhir.validation import validate
from tests.helpers import REFERRAL_EXAMPLES

STAMP = "2026-11-26T10:15:00Z"
EXAMPLE_IDS = [p.stem for p in REFERRAL_EXAMPLES]


@pytest.fixture(params=REFERRAL_EXAMPLES, ids=EXAMPLE_IDS)
def referral(request: pytest.FixtureRequest) -> Referral:
    return load_referral(request.param.read_bytes())


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


@pytest.mark.parametrize("kind", ["message", "transaction", "collection"])
def test_every_bundle_kind_is_valid_r4(referral: Referral, kind: str) -> None:
    bundle = translate(referral, kind, timestamp=STAMP)
    assert bundle["type"] == kind
    Bundle.model_validate(bundle)  # raises on any structural error
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])
    assert all(e["resource"]["meta"]["lastUpdated"] == STAMP for e in bundle["entry"])
    if kind == "transaction":
        assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
        patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        assert patient["request"]["ifNoneExist"] == f"identifier={codes.NHS_NUMBER}|{referral.patient.nhs_number}"


def test_message_is_bars_aligned(referral: Referral) -> None:
    bundle = translate(referral, "message", timestamp=STAMP)
    header = bundle["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    assert header["eventCoding"] == {"system": codes.CS_MESSAGE_EVENTS_BARS, "code": "servicerequest-request"}
    assert header["reason"]["coding"][0] == {"system": codes.CS_MESSAGE_REASON_BARS, "code": "new"}
    assert header["definition"] == codes.BARS_REFERRAL_DEFINITION
    resources = _by_url(bundle)
    sr = resources[header["focus"][0]["reference"]]
    assert sr["resourceType"] == "ServiceRequest"
    assert sr["intent"] == "plan" and sr["status"] == "active"
    assert sr["authoredOn"] == referral.referral_date.isoformat()
    assert resources[sr["subject"]["reference"]]["resourceType"] == "Patient"
    supporting = [resources[s["reference"]] for s in sr["supportingInfo"]]
    assert any(r["resourceType"] == "QuestionnaireResponse" for r in supporting)
    if referral.receiver:
        destination = header["destination"][0]
        assert resources[destination["receiver"]["reference"]]["identifier"][0]["value"] == referral.receiver.ods_code
    # Every reference inside the Bundle resolves to an entry.
    for ref in _references(bundle):
        assert ref in resources, ref


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_patient_carries_uk_core_nhs_number(referral: Referral) -> None:
    patient = _resources(translate(referral, timestamp=STAMP), "Patient")[0]
    ident = patient["identifier"][0]
    assert ident["system"] == "https://fhir.nhs.uk/Id/nhs-number"
    assert ident["value"] == referral.patient.nhs_number
    coding = ident["extension"][0]["valueCodeableConcept"]["coding"][0]
    assert coding["system"] == codes.CS_NHS_NUMBER_VERIFICATION_ENGLAND
    assert coding["code"] == referral.patient.nhs_number_verification_status


def test_startback_observations_match_the_score() -> None:
    referral = load_referral((REFERRAL_EXAMPLES[0].parent / "back-physio-medium.json").read_bytes())
    assert referral.start_back is not None
    expected = score(referral.start_back)
    bundle = translate(referral, timestamp=STAMP)
    resources = _by_url(bundle)
    observations = {o["code"]["coding"][0]["code"]: o for o in _resources(bundle, "Observation")}
    assert observations["91351-7"]["valueInteger"] == expected.total
    assert observations["91350-9"]["valueInteger"] == expected.psychosocial
    assert observations["91352-5"]["valueCodeableConcept"]["coding"][0]["code"] == "LA8982-6"  # medium
    for code in ("91351-7", "91350-9", "91352-5"):
        source = resources[observations[code]["derivedFrom"][0]["reference"]]
        assert source["resourceType"] == "QuestionnaireResponse"
        assert source["questionnaire"].startswith(codes.Q_STARTBACK)
    decision = observations["eligibility-assessment"]
    assert decision["valueCodeableConcept"]["coding"][0]["code"] == "eligible"
    reasons = {c["code"]["coding"][0]["code"]: c["valueCodeableConcept"]["text"] for c in decision["component"]}
    assert reasons["startback"] == "medium risk (total 4, psychosocial 1)"


@pytest.mark.parametrize(("reason", "status"), [("new", "active"), ("update", "active"), ("delete", "revoked")])
def test_message_reason_sets_status(reason: str, status: str) -> None:
    referral = load_referral(REFERRAL_EXAMPLES[0].read_bytes())
    bundle = translate(referral, "message", reason=reason, timestamp=STAMP)
    assert bundle["entry"][0]["resource"]["reason"]["coding"][0]["code"] == reason
    assert _resources(bundle, "ServiceRequest")[0]["status"] == status


def test_translation_is_reproducible_and_messages_have_distinct_ids(referral: Referral) -> None:
    first = translate(referral, timestamp=STAMP)
    assert translate(referral, timestamp=STAMP) == first
    later = translate(referral, reason="update", timestamp="2026-11-27T08:00:00Z")
    assert later["id"] != first["id"]
    # The resources keep their ids across messages about the same referral.
    assert [e["fullUrl"] for e in later["entry"][1:]] == [e["fullUrl"] for e in first["entry"][1:]]


@pytest.mark.parametrize("kind", ["message", "transaction", "collection"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_round_trip_keeps_every_field(referral: Referral, kind: str, fmt: str) -> None:
    bundle = translate(referral, kind, timestamp=STAMP)
    wire = dump(bundle, fmt)
    back = read_referral(parse(wire, fmt))
    assert back.referral == referral
    assert back.warnings == []


def test_round_trip_of_a_startback_result_without_answers() -> None:
    data = load_referral((REFERRAL_EXAMPLES[0].parent / "back-self-low.json").read_bytes()).to_json_dict()
    del data["startBack"]
    data["startBackResult"] = {"total": 2, "psychosocial": 1, "risk": "low"}
    referral = load_referral(data)
    bundle = translate(referral, timestamp=STAMP)
    assert not any(
        r["questionnaire"].startswith(codes.Q_STARTBACK) for r in _resources(bundle, "QuestionnaireResponse")
    )
    assert read_referral(copy.deepcopy(bundle)).referral == referral


# --- a referral lacking detail (issue 9: a received referral may not state everything) ---------------------

SPARSE_CHANGES = {
    "no patient name, birth date or sex": lambda d: [d["patient"].pop(k) for k in ("name", "birthDate", "sex")],
    "no referrer name": lambda d: d["referrer"].pop("name"),
    "referrer organisation without ODS code": lambda d: d["referrer"]["organisation"].update(
        {"odsCode": None, "name": "A practice"}
    ),
    "no referrer organisation": lambda d: d["referrer"].pop("organisation"),
}


def _sparse(change: str) -> Referral:
    data = load_referral(REFERRAL_EXAMPLES[0].read_bytes()).to_json_dict()
    SPARSE_CHANGES[change](data)
    return load_referral({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize("change", sorted(SPARSE_CHANGES))
@pytest.mark.parametrize("kind", ["message", "transaction"])
def test_a_referral_lacking_detail_leaves_the_elements_out_and_round_trips(change: str, kind: str) -> None:
    referral = _sparse(change)
    bundle = translate(referral, kind, timestamp=STAMP)
    errors = [f"{i.location}: {i.message}" for i in validate(bundle).errors]
    assert errors == []
    patient = _resources(bundle, "Patient")[0]
    assert ("birthDate" in patient) is (referral.patient.birth_date is not None)
    assert ("name" in patient) is (referral.patient.name is not None)
    assert read_referral(parse(dump(bundle, "json"), "json")).referral == referral


def test_a_referral_without_affected_sites_translates_to_a_valid_bundle() -> None:
    data = load_referral(REFERRAL_EXAMPLES[0].read_bytes()).to_json_dict() | {"affectedSites": []}
    bundle = translate(load_referral(data), "message", timestamp=STAMP)
    assert [f"{i.location}: {i.message}" for i in validate(bundle).errors] == []


def test_the_symptom_onset_date_round_trips() -> None:
    data = load_referral(REFERRAL_EXAMPLES[0].read_bytes()).to_json_dict() | {"symptomOnsetDate": "2024-07-01"}
    referral = load_referral(data)
    bundle = translate(referral, "message", timestamp=STAMP)
    assert read_referral(parse(dump(bundle, "json"), "json")).referral == referral
