"""Message semantics of ``$process-message`` (issue 9, "Corrections are lost"): only a true duplicate is 409;
a reused Bundle id with other content and a second ``new`` for a held referral are refused (422) saying what
to do; an ``update`` re-assesses the Task and says what changed. On SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from escape_fhir.domain import load_referral
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.formats import dump
from tests.api.conftest import MakeClient, example, message_headers
from tests.helpers import EXAMPLES

Json = dict[str, Any]
HTTP_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"


@pytest.fixture(params=["sqlite", "postgres"])
def client(request: pytest.FixtureRequest, make_client: MakeClient) -> TestClient:
    if request.param == "sqlite":
        return make_client()
    return make_client(database_url=request.getfixturevalue("pg_url"))


def post(client: TestClient, body: bytes | Json, request_id: str | None = None, fmt: str = "json") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/$process-message", content=data, headers=message_headers(request_id, fmt=fmt))


def knee() -> Json:
    loaded: Json = json.loads(example("knee-gp"))
    return loaded


def resources(bundle: Json, kind: str) -> list[Json]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def the_task(client: TestClient) -> Json:
    (entry,) = client.get("/Task").json()["entry"]
    task: Json = entry["resource"]
    return task


def decision(task: Json) -> str:
    code: str = task["input"][0]["valueCodeableConcept"]["coding"][0]["code"]
    return code


SENT = itertools.count(1)


def referral_message(reason: str, **eligibility: bool) -> Json:
    """The knee-gp referral as a message Bundle of ``reason``, answers changed. Each is built a second later
    than the one before, so it has a Bundle id of its own (translate derives it from the timestamp)."""
    referral = json.loads((EXAMPLES / "referrals" / "knee-gp.json").read_bytes())
    referral["eligibility"].update(eligibility)
    stamp = f"2026-11-20T09:30:{next(SENT) % 60:02d}Z"
    return translate(load_referral(json.dumps(referral).encode()), "message", reason=reason, timestamp=stamp)


def only_issue(r: Any, status: int) -> Json:
    assert r.status_code == status, r.text
    issue: Json = r.json()["issue"][0]
    assert issue["details"]["coding"][0]["system"] == HTTP_ERROR_CODES
    return issue


# --- retries and duplicates --------------------------------------------------------------------------------


def test_a_retry_of_the_same_bytes_is_409_for_the_same_request_id_and_the_first_answer_for_another(
    client: TestClient,
) -> None:
    first = post(client, example("knee-gp"), "req-1")
    assert first.status_code == 200, first.text
    issue = only_issue(post(client, example("knee-gp"), "req-1"), 409)
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("duplicate", "REC_CONFLICT")
    again = post(client, example("knee-gp"), "req-2")
    assert again.status_code == 200 and again.json() == first.json()
    assert client.get("/ServiceRequest").json()["total"] == 1


def test_a_corrected_message_sent_again_with_the_same_request_id_is_refused_not_a_duplicate(
    client: TestClient,
) -> None:
    """``send`` says "send again later with the same --request-id" when it gets no answer; a sender that
    corrects the file meanwhile must not be told its correction was already delivered."""
    sent = knee()
    assert post(client, sent, "req-1").status_code == 200
    corrected = copy.deepcopy(sent)
    corrected["entry"][1]["resource"]["priority"] = "urgent"
    issue = only_issue(post(client, corrected, "req-1"), 422)
    assert (issue["code"], issue["expression"]) == ("conflict", ["Bundle.id"])
    assert "Bundle.entry[1].resource.priority" in issue["diagnostics"]
    corrected["id"] = "a-new-bundle-id"
    issue = only_issue(post(client, corrected, "req-1"), 422)
    assert (issue["code"], issue["expression"]) == ("conflict", ["X-Request-ID"])
    assert f"received before with another message (Bundle id {sent['id']})" in issue["diagnostics"]
    assert client.get("/ServiceRequest").json()["total"] == 1


def test_the_same_content_as_xml_or_restamped_is_the_same_message(client: TestClient) -> None:
    first = post(client, example("knee-gp"))
    as_xml = post(client, example("knee-gp", "xml"), fmt="xml")
    assert as_xml.status_code == 200 and as_xml.json() == first.json()  # the stored answer, not a new referral
    # A sender that rebuilds the message to retry it stamps it again: the content is the same.
    restamped = knee()
    restamped["timestamp"] = "2026-11-21T08:00:00Z"
    for entry in restamped["entry"]:
        entry["resource"]["meta"]["lastUpdated"] = "2026-11-21T08:00:00Z"
    pretty = dump(restamped, "json", pretty=True)
    assert post(client, pretty).json() == first.json()
    assert client.get("/ServiceRequest").json()["total"] == 1
    assert client.get(f"/Task/{the_task(client)['id']}").headers["etag"] == 'W/"1"'


def test_the_same_bundle_id_with_other_content_is_refused_naming_the_difference(client: TestClient) -> None:
    sent = knee()
    first = post(client, sent)
    sr_id = resources(first.json(), "ServiceRequest")[0]["id"]
    changed = copy.deepcopy(sent)
    changed["entry"][1]["resource"]["note"] = [{"text": "contraindication: unstable angina"}]
    changed["entry"][2]["resource"]["birthDate"] = "1957-03-14"
    r = post(client, changed)
    issue = only_issue(r, 422)
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("conflict", "REC_UNPROCESSABLE_ENTITY")
    assert issue["expression"] == ["Bundle.id"]
    assert f"Bundle id {sent['id']} was received before with other content" in issue["diagnostics"]
    assert "Bundle.entry[1].resource.note" in issue["diagnostics"]
    assert "Bundle.entry[2].resource.birthDate" in issue["diagnostics"]
    located = [i["expression"][0] for i in r.json()["issue"][1:]]
    assert located == ["Bundle.entry[1].resource.note[0].text", "Bundle.entry[2].resource.birthDate"]
    # nothing stored: the first message stands
    current = client.get(f"/ServiceRequest/{sr_id}")
    assert current.headers["etag"] == 'W/"1"' and current.json()["note"] == sent["entry"][1]["resource"]["note"]
    # and the refused delivery's request id was not logged: sent again it gets the same refusal, not a 409
    assert post(client, changed, "same-request").status_code == 422
    assert post(client, changed, "same-request").status_code == 422


def test_a_message_logged_before_hashes_were_kept_is_compared_by_its_original_bytes(client: TestClient) -> None:
    sent = knee()
    first = post(client, sent)
    engine = client.app.state.db.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("UPDATE message SET content_hash = NULL"))
    assert post(client, example("knee-gp", "xml"), fmt="xml").json() == first.json()
    changed = copy.deepcopy(sent)
    changed["entry"][1]["resource"]["priority"] = "urgent"
    assert "Bundle.entry[1].resource.priority" in only_issue(post(client, changed), 422)["diagnostics"]


# --- new and update ----------------------------------------------------------------------------------------


def test_a_second_new_message_for_a_held_referral_is_refused_telling_to_send_an_update(client: TestClient) -> None:
    assert post(client, referral_message("new")).status_code == 200
    correction = referral_message("new", contraindicationsToExercise=True)  # another Bundle id, same referral
    issue = only_issue(post(client, correction), 422)
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("business-rule", "REC_UNPROCESSABLE_ENTITY")
    assert issue["expression"] == ["Bundle.entry[0].resource.reason"]
    assert "already held here as ESCAPE-000001" in issue["diagnostics"]
    assert f"{codes.CS_MESSAGE_REASON_BARS}|update" in issue["diagnostics"]
    assert client.get("/ServiceRequest").json()["total"] == 1
    assert decision(the_task(client)) == "eligible"  # unchanged: nothing of the refused message was stored


def test_a_contraindication_added_in_an_update_makes_the_task_not_eligible_and_says_so(client: TestClient) -> None:
    assert post(client, referral_message("new")).status_code == 200
    before = the_task(client)
    assert decision(before) == "eligible" and "note" not in before
    r = post(client, referral_message("update", contraindicationsToExercise=True))
    assert r.status_code == 200, r.text
    task = client.get(f"/Task/{before['id']}")
    assert task.headers["etag"] == 'W/"2"'
    after = task.json()
    assert (after["status"], decision(after)) == ("requested", "not-eligible")
    shown = after["input"][0]["valueCodeableConcept"]["text"]
    assert "No contraindications to exercise" in shown
    criterion = {
        i["type"]["coding"][0]["code"]: i["valueCodeableConcept"]
        for i in after["input"][1:]
        if "valueCodeableConcept" in i
    }
    assert criterion["contraindications"]["coding"][0]["code"] == "not-met"
    (note,) = after["note"]
    assert note["text"].startswith(f"updated {after['lastModified']}: decision eligible -> not-eligible; ")
    assert "No contraindications to exercise: met -> not-met" in note["text"]
    assert note["time"] == after["lastModified"]


def test_a_correction_translated_again_with_the_same_timestamp_reuses_the_bundle_id_and_is_refused(
    client: TestClient,
) -> None:
    """translate derives the Bundle id from the referral id, reason and timestamp: a correction built with
    the same ``--timestamp`` has the first message's id, and must not get the first message's answer."""
    referral = json.loads((EXAMPLES / "referrals" / "knee-gp.json").read_bytes())
    first = translate(load_referral(json.dumps(referral).encode()), "message", timestamp="2026-11-20T09:30:00Z")
    referral["eligibility"]["contraindicationsToExercise"] = True
    again = translate(load_referral(json.dumps(referral).encode()), "message", timestamp="2026-11-20T09:30:00Z")
    assert first["id"] == again["id"]
    assert post(client, first).status_code == 200
    issue = only_issue(post(client, again), 422)
    assert issue["code"] == "conflict"
    # the answer that changed, located in the eligibility QuestionnaireResponse
    assert ".resource.item[5].answer[0].valueBoolean" in issue["diagnostics"]
    assert decision(the_task(client)) == "eligible"


def test_an_update_that_changes_no_criterion_keeps_the_decision_and_notes_it(client: TestClient) -> None:
    sent = referral_message("new")
    assert post(client, sent).status_code == 200
    update = referral_message("update")
    update["entry"][1]["resource"]["note"] = [{"text": "also worse on stairs"}]
    assert post(client, update).status_code == 200
    (note,) = the_task(client)["note"]
    assert note["text"].endswith(": decision eligible (unchanged); no criterion changed")


def accept(client: TestClient, task: Json, status: str = "accepted", **more: Any) -> Json:
    r = client.put(f"/Task/{task['id']}", json={**task, "status": status, **more}, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    accepted: Json = r.json()
    return accepted


def test_an_accepted_task_goes_back_to_requested_when_an_update_changes_the_decision(client: TestClient) -> None:
    assert post(client, referral_message("new")).status_code == 200
    accept(client, the_task(client))
    assert post(client, referral_message("update", contraindicationsToExercise=True)).status_code == 200
    task = the_task(client)
    assert (task["status"], decision(task)) == ("requested", "not-eligible")
    assert task["businessStatus"]["text"] == "updated by the sender after it was accepted: re-triage needed"
    assert task["note"][-1]["text"].endswith("; back to requested for re-triage (was accepted)")
    sr = client.get(task["focus"]["reference"]).json()
    assert sr["status"] == "active"


def test_an_accepted_task_stays_accepted_when_an_update_changes_nothing_assessed(client: TestClient) -> None:
    assert post(client, referral_message("new")).status_code == 200
    accept(client, the_task(client))
    update = referral_message("update")
    update["entry"][1]["resource"]["note"] = [{"text": "phone number changed"}]
    assert post(client, update).status_code == 200
    task = the_task(client)
    assert (task["status"], decision(task)) == ("accepted", "eligible")
    assert task["note"][-1]["text"].endswith("decision eligible (unchanged); no criterion changed")


def test_an_update_of_a_rejected_referral_is_refused_telling_to_send_a_new_referral(client: TestClient) -> None:
    assert post(client, referral_message("new")).status_code == 200
    accept(client, the_task(client), "rejected", statusReason={"text": "not local"})
    issue = only_issue(post(client, referral_message("update", contraindicationsToExercise=True)), 422)
    assert issue["code"] == "business-rule"
    assert "ESCAPE-000001 was rejected at triage (ServiceRequest revoked)" in issue["diagnostics"]
    assert "send a new referral, with a new identifier" in issue["diagnostics"]
    assert decision(the_task(client)) == "eligible"


# --- POST / transactions -----------------------------------------------------------------------------------


def referral_transaction(**eligibility: bool) -> Json:
    referral = json.loads((EXAMPLES / "referrals" / "knee-gp.json").read_bytes())
    referral["eligibility"].update(eligibility)
    return translate(load_referral(json.dumps(referral).encode()), "transaction")


def as_puts(transaction: Json, answer: Json) -> Json:
    """The transaction again as PUTs of the resources it created (ids from the answer's locations)."""
    out = copy.deepcopy(transaction)
    for entry, result in zip(out["entry"], answer["entry"], strict=True):
        kind, rid = result["response"]["location"].split("/")[:2]
        entry["request"] = {"method": "PUT", "url": f"{kind}/{rid}"}
        entry["resource"]["id"] = rid
    return out


def test_a_transaction_creating_a_held_referral_again_is_refused_telling_to_send_an_update(client: TestClient) -> None:
    first = client.post("/", json=referral_transaction())
    assert first.status_code == 200, first.text
    issue = only_issue(client.post("/", json=referral_transaction(contraindicationsToExercise=True)), 422)
    sr_id = client.get("/ServiceRequest").json()["entry"][0]["resource"]["id"]
    assert issue["code"] == "business-rule" and issue["expression"][0].endswith(".resource.identifier")
    assert f"already held here as ESCAPE-000001 (ServiceRequest/{sr_id})" in issue["diagnostics"]
    assert "MessageHeader reason update" in issue["diagnostics"]
    assert client.get("/ServiceRequest").json()["total"] == 1
    assert decision(the_task(client)) == "eligible"


def test_a_transaction_putting_the_referral_again_is_refused_and_the_task_stands(client: TestClient) -> None:
    """A held referral changes only by an update message, which re-assesses it (service/permissions.py): a PUT
    of its ServiceRequest in a transaction would change it behind triage's back."""
    sent = referral_transaction()
    answer = client.post("/", json=sent).json()
    accept(client, the_task(client))
    changed = as_puts(referral_transaction(contraindicationsToExercise=True), answer)
    r = client.post("/", json=changed)
    assert r.status_code == 422, r.text
    assert any("update" in i["diagnostics"] for i in r.json()["issue"]), r.text
    task = the_task(client)
    assert (task["status"], decision(task)) == ("accepted", "eligible")
