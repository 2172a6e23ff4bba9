"""Read, version read, history, search with paging, Questionnaires, $validate, metadata, transactions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from escape_fhir.domain import load_referral
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundles import translate
from tests.api.conftest import example, message_headers
from tests.helpers import REFERRAL_EXAMPLES

Json = dict[str, Any]
NAMES = ["knee-gp", "back-physio-medium", "back-self-low", "hip-msk-triage", "knee-not-eligible"]


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    for name in NAMES:
        assert client.post("/$process-message", content=example(name), headers=message_headers()).status_code == 200
    return client


def search(client: TestClient, kind: str, **params: str) -> Json:
    r = client.get(f"/{kind}", params=params)
    assert r.status_code == 200, r.text
    found: Json = r.json()
    return found


def test_read_vread_and_history_carry_etag_and_last_modified(filled: TestClient) -> None:
    sr = search(filled, "ServiceRequest", _count="1")["entry"][0]["resource"]
    r = filled.get(f"/ServiceRequest/{sr['id']}")
    assert r.headers["etag"] == 'W/"1"' and r.headers["last-modified"].endswith("GMT")
    assert filled.get(f"/ServiceRequest/{sr['id']}/_history/1").json() == sr
    assert filled.get(f"/ServiceRequest/{sr['id']}/_history/2").status_code == 404
    history = filled.get(f"/ServiceRequest/{sr['id']}/_history").json()
    assert history["type"] == "history" and history["entry"][0]["response"]["etag"] == 'W/"1"'
    for kind in ("Patient", "QuestionnaireResponse", "Observation"):
        ref = sr["subject"] if kind == "Patient" else None
        if ref:
            assert filled.get(f"/{ref['reference']}").status_code == 200


def test_search_by_nhs_number_status_identifier_and_performer(filled: TestClient) -> None:
    nhs = json.loads((REFERRAL_EXAMPLES[0]).read_text())["patient"]["nhsNumber"]
    by_nhs = search(filled, "ServiceRequest", **{"patient.identifier": f"{codes.NHS_NUMBER}|{nhs}"})
    assert by_nhs["total"] == 1
    patient = by_nhs["entry"][0]["resource"]["subject"]["reference"]
    assert search(filled, "ServiceRequest", patient=patient)["total"] == 1
    assert search(filled, "ServiceRequest", patient=patient.split("/")[1])["total"] == 1
    assert search(filled, "ServiceRequest", status="active")["total"] == 5
    assert search(filled, "ServiceRequest", status="revoked")["total"] == 0
    sent_id = by_nhs["entry"][0]["resource"]["identifier"][0]
    assert search(filled, "ServiceRequest", identifier=f"{sent_id['system']}|{sent_id['value']}")["total"] == 1
    performer = by_nhs["entry"][0]["resource"]["performer"][0]["reference"]
    assert search(filled, "ServiceRequest", performer=performer)["total"] == 1


def test_paging_with_next_links_newest_first(filled: TestClient) -> None:
    page = search(filled, "ServiceRequest", _count="2", _sort="-_lastUpdated")
    seen = []
    while True:
        seen += [e["resource"]["id"] for e in page["entry"]]
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not following:
            break
        page = filled.get(following[0].removeprefix("http://testserver")).json()
    assert len(seen) == len(set(seen)) == 5
    updated = [filled.get(f"/ServiceRequest/{i}").json()["meta"]["lastUpdated"] for i in seen]
    assert updated == sorted(updated, reverse=True)


def test_last_updated_ranges(filled: TestClient) -> None:
    assert search(filled, "ServiceRequest", _lastUpdated="ge2000-01-01")["total"] == 5
    assert search(filled, "ServiceRequest", _lastUpdated="lt2000")["total"] == 0
    assert filled.get("/ServiceRequest", params={"_lastUpdated": "ge2026-13-01"}).status_code == 400


def test_task_search_by_status_and_owner(filled: TestClient) -> None:
    tasks = search(filled, "Task", status="requested")
    assert tasks["total"] == 5
    owner = tasks["entry"][0]["resource"]["owner"]["reference"]
    assert search(filled, "Task", owner=owner)["total"] == 1


@pytest.mark.parametrize(
    "params",
    [{"colour": "red"}, {"_count": "many"}, {"_sort": "name"}, {"_lastUpdated": "sometime"}],
    ids=["unknown-parameter", "bad-count", "bad-sort", "bad-date"],
)
def test_bad_search_parameters_are_400(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/ServiceRequest", params=params)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


def test_questionnaires_are_readable(client: TestClient) -> None:
    listed = search(client, "Questionnaire")
    assert listed["total"] == 3
    one = listed["entry"][0]["resource"]
    assert client.get(f"/Questionnaire/{one['id']}").json() == one
    assert search(client, "Questionnaire", url=one["url"])["total"] == 1


def test_validate_answers_200_with_the_issues(client: TestClient) -> None:
    bundle = example("knee-gp")
    r = client.post("/$validate", content=bundle, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200 and r.json()["resourceType"] == "OperationOutcome"
    assert not [i for i in r.json()["issue"] if i["severity"] == "error"]
    patient = {"resourceType": "Patient", "identifier": [{"system": codes.NHS_NUMBER, "value": "9990000019"}]}
    r = client.post("/Patient/$validate", json=patient)
    assert r.status_code == 200 and any(i["severity"] == "error" for i in r.json()["issue"])
    assert client.post("/Task/$validate", json=patient).status_code == 400
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}
    assert any(i["severity"] == "error" for i in client.post("/$validate", json=params).json()["issue"])


def test_metadata_states_what_is_implemented(client: TestClient) -> None:
    cs = client.get("/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert {"ServiceRequest", "Task", "QuestionnaireResponse", "Observation", "Patient"} <= set(resources)
    assert {p["name"] for p in resources["ServiceRequest"]["searchParam"]} >= {
        "patient",
        "patient.identifier",
        "status",
        "_lastUpdated",
        "performer",
        "identifier",
        "_count",
        "_sort",
    }
    assert [o["name"] for o in cs["rest"][0]["operation"]] == ["process-message", "validate", "route"]


def test_a_transaction_is_atomic_and_a_referral_in_it_gets_a_task(client: TestClient) -> None:
    bundle = translate(load_referral(REFERRAL_EXAMPLES[0].read_bytes()), "transaction")
    r = client.post("/", json=bundle)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses.count("201 Created") >= len(statuses) - 1  # one Organization is both referrer and receiver
    assert search(client, "Task")["total"] == 1
    # The same referral again: a second referral of one request is refused (issue 9); it is updated with PUT.
    again = client.post("/", json=bundle)
    assert again.status_code == 422 and "reason update" in again.json()["issue"][0]["diagnostics"]
    assert search(client, "ServiceRequest")["total"] == 1
    broken = json.loads(json.dumps(bundle))
    broken["entry"][-1]["request"]["method"] = "PATCH"
    before = search(client, "ServiceRequest")["total"]
    assert client.post("/", json=broken).status_code == 422
    assert search(client, "ServiceRequest")["total"] == before
