"""``POST /$process-message`` in process: acknowledgement, idempotency, update, withdrawal, BaRS examples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from escape_fhir.errors import InputError
from escape_fhir.fhir import codes
from escape_fhir.fhir.formats import parse
from tests.api.conftest import example, message_headers
from tests.helpers import shared_files

Json = dict[str, Any]


def post(client: TestClient, body: bytes | Json, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/$process-message", content=data, headers={**message_headers(), **headers})


def entries(bundle: Json, kind: str) -> list[Json]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def with_reason(bundle: Json, reason: str, bundle_id: str) -> Json:
    out = copy.deepcopy(bundle)
    out["id"] = bundle_id
    out["entry"][0]["resource"]["reason"]["coding"][0]["code"] = reason
    return out


def test_a_new_referral_is_stored_and_acknowledged_with_our_ids_and_a_planned_encounter(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    r = post(client, sent, **{"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"})
    assert r.status_code == 200, r.text
    assert (r.headers["x-request-id"], r.headers["x-correlation-id"]) == ("req-1", "corr-1")
    ack = r.json()
    assert ack["id"] == sent["id"] and ack["type"] == "message"
    sr = entries(ack, "ServiceRequest")[0]
    assert sr["id"] != sent["entry"][1]["resource"]["id"]  # BaRS: ids assigned by the receiver
    assert sr["subject"]["reference"].startswith("Patient/")
    header = ack["entry"][0]["resource"]
    assert header["focus"][0]["reference"] == f"ServiceRequest/{sr['id']}"
    (encounter,) = entries(ack, "Encounter")
    assert encounter["status"] == "planned"
    assert encounter["identifier"][0]["value"] == "ESCAPE-000001"
    assert client.get(f"/ServiceRequest/{sr['id']}").json() == sr


def test_the_triage_task_shows_the_eligibility_decision_and_the_startback_risk(client: TestClient) -> None:
    assert post(client, example("back-physio-medium")).status_code == 200
    (task,) = [e["resource"] for e in client.get("/Task").json()["entry"]]
    assert (task["status"], task["intent"]) == ("requested", "order")
    coded = [i for i in task["input"] if "valueCodeableConcept" in i]
    shown = {i["type"]["coding"][0]["code"]: i["valueCodeableConcept"]["coding"][0]["code"] for i in coded}
    assert {k: shown[k] for k in ("eligibility-assessment", codes.STARTBACK_RISK[0])} == {
        "eligibility-assessment": "eligible",
        codes.STARTBACK_RISK[0]: "LA8982-6",
    }
    # each criterion too, with its outcome (CS_CRITERION_OUTCOME) and its reason as text
    criteria = [i for i in task["input"] if i["type"]["coding"][0]["system"] == codes.CS_CRITERION]
    assert {i["type"]["coding"][0]["code"] for i in criteria} >= {"age", "contraindications", "startback"}
    assert all(i["valueCodeableConcept"]["coding"][0]["code"] == "met" for i in criteria)
    assert all(i["valueCodeableConcept"]["text"] for i in criteria)
    assert task["owner"]["identifier"]["system"] == codes.ODS_ORGANIZATION
    # where each fact came from in the sender's message (issue 8): the STarT Back answers, for one
    sources = [i["valueString"] for i in task["input"] if i["type"]["coding"][0]["code"] == "fact-source"]
    assert any(line.startswith("startBack: medium risk") and "Bundle.entry[" in line for line in sources), sources


def test_a_repeated_request_id_gets_409_duplicate_and_changes_nothing(client: TestClient) -> None:
    first = post(client, example("knee-gp"), **{"X-Request-ID": "same"})
    again = post(client, example("knee-gp"), **{"X-Request-ID": "same"})
    assert (first.status_code, again.status_code) == (200, 409)
    issue = again.json()["issue"][0]
    assert issue["code"] == "duplicate"
    assert issue["details"]["coding"][0]["code"] == "REC_CONFLICT"
    assert again.headers["x-request-id"] == "same"
    assert client.get("/ServiceRequest").json()["total"] == 1


def test_a_request_id_repeated_with_another_message_is_refused_not_a_duplicate(client: TestClient) -> None:
    """Answered 409 duplicate, the sender would take the other message for delivered (issue 9)."""
    assert post(client, example("knee-gp"), **{"X-Request-ID": "same"}).status_code == 200
    other = post(client, example("hip-msk-triage"), **{"X-Request-ID": "same"})
    assert other.status_code == 422
    issue = other.json()["issue"][0]
    assert (issue["code"], issue["expression"]) == ("conflict", ["X-Request-ID"])
    assert issue["details"]["coding"][0]["code"] == "REC_UNPROCESSABLE_ENTITY"
    assert "Each message needs its own X-Request-ID" in issue["diagnostics"]
    assert client.get("/ServiceRequest").json()["total"] == 1


def test_a_message_already_processed_gets_its_original_response(client: TestClient) -> None:
    first = post(client, example("knee-gp"))
    again = post(client, example("knee-gp"), **{"X-Request-ID": "another"})
    assert again.status_code == 200 and again.json() == first.json()
    assert client.get("/ServiceRequest").json()["total"] == 1
    assert client.get("/Task").json()["total"] == 1


def test_update_replaces_the_resources_as_new_versions_and_delete_revokes(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    ack = post(client, sent).json()
    sr_id = entries(ack, "ServiceRequest")[0]["id"]
    update = with_reason(sent, "update", "update-1")
    update["entry"][1]["resource"]["note"] = [{"text": "now worse at night"}]
    r = post(client, update)
    assert r.status_code == 200, r.text
    assert entries(r.json(), "ServiceRequest")[0]["id"] == sr_id
    current = client.get(f"/ServiceRequest/{sr_id}")
    assert current.headers["etag"] == 'W/"2"' and current.json()["note"][0]["text"] == "now worse at night"
    patient_id = entries(ack, "Patient")[0]["id"]
    assert client.get(f"/Patient/{patient_id}/_history").json()["total"] == 2
    r = post(client, with_reason(sent, "delete", "delete-1"))
    assert r.status_code == 200, r.text
    assert client.get(f"/ServiceRequest/{sr_id}").json()["status"] == "revoked"
    assert client.get("/Task").json()["entry"][0]["resource"]["status"] == "cancelled"
    # a withdrawn referral cannot be updated any more: refused (422), never a 409 a sender could take as delivered
    r = post(client, with_reason(sent, "update", "update-2"))
    assert r.status_code == 422 and "ESCAPE-000001 was withdrawn" in r.json()["issue"][0]["diagnostics"]


def test_an_update_of_an_unknown_referral_is_422(client: TestClient) -> None:
    r = post(client, with_reason(json.loads(example("knee-gp")), "update", "u-x"))
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "not-found"


def test_a_second_new_message_for_a_held_referral_is_422_asking_for_an_update(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    assert post(client, sent).status_code == 200
    r = post(client, with_reason(sent, "new", "another-bundle"))
    assert r.status_code == 422 and "ESCAPE-000001" in r.json()["issue"][0]["diagnostics"]


def test_retired_nhs_number_verification_codes_are_accepted_with_a_warning(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    patient = entries(sent, "Patient")[0]
    ext = patient["identifier"][0]["extension"][0]
    ext["valueCodeableConcept"]["coding"] = [
        {"system": codes.CS_NHS_NUMBER_VERIFICATION_RETIRED, "code": "number-present-and-verified"}
    ]
    r = post(client, sent)
    assert r.status_code == 200, r.text
    (outcome,) = entries(r.json(), "OperationOutcome")
    assert any("number-present-and-verified" in i["diagnostics"] for i in outcome["issue"])
    assert all(i["severity"] == "warning" for i in outcome["issue"])


def test_a_wrong_display_label_is_a_warning_not_a_lost_referral(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    condition = entries(sent, "Condition")[0]
    condition["clinicalStatus"]["coding"][0]["display"] = "Currently active"  # a sender's own label for 'active'
    r = post(client, sent)
    assert r.status_code == 200, r.text
    (outcome,) = entries(r.json(), "OperationOutcome")
    wrong = [i for i in outcome["issue"] if "Wrong Display Name 'Currently active'" in i["diagnostics"]]
    assert wrong and all(i["severity"] == "warning" for i in wrong)
    # The same label is still an error for a developer asking the validator.
    checked = client.post(
        "/$validate", content=json.dumps(sent).encode(), headers={"Content-Type": "application/fhir+json"}
    )
    assert any(
        i["severity"] == "error" and "Wrong Display Name" in i.get("diagnostics", "") for i in checked.json()["issue"]
    )


@pytest.mark.parametrize("missing", ["X-Request-ID", "X-Correlation-ID"])
def test_both_bars_ids_are_required(client: TestClient, missing: str) -> None:
    headers = message_headers()
    del headers[missing]
    r = client.post("/$process-message", content=example("knee-gp"), headers=headers)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == [missing]
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_BAD_REQUEST"


def test_xml_in_and_out(client: TestClient) -> None:
    r = client.post(
        "/$process-message",
        content=example("hip-msk-triage", "xml"),
        headers={**message_headers(fmt="xml"), "Accept": "application/fhir+xml"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+xml")
    assert parse(r.content)["type"] == "message"


def test_an_invalid_bundle_is_refused_with_the_validators_located_issues(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    entries(sent, "Patient")[0]["identifier"][0]["value"] = "9990000019"  # fails Modulus 11
    r = post(client, sent)
    assert r.status_code == 400
    issues = r.json()["issue"]
    assert any(i["expression"][0].startswith("Bundle.entry[2].resource.identifier[0]") for i in issues)
    assert client.get("/ServiceRequest").json()["total"] == 0


def test_a_valid_bundle_that_cannot_be_mapped_is_422_with_locations(client: TestClient) -> None:
    sent = json.loads(example("knee-gp"))
    entries(sent, "Patient")[0]["birthDate"] = "2027-01-01"  # after the referral date: not a referral we can use
    r = post(client, sent)
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"][0].startswith("Bundle.entry[2].resource")
    assert issue["details"]["coding"][0]["code"] == "REC_UNPROCESSABLE_ENTITY"


@pytest.mark.parametrize("path", shared_files("fhir", "bars", "Examples"), ids=lambda p: p.name[:24])
def test_bars_examples_posted_as_they_are_get_a_precise_outcome(client: TestClient, path: Path) -> None:
    fmt = "xml" if path.suffix == ".xml" else "json"
    r = client.post("/$process-message", content=path.read_bytes(), headers=message_headers(fmt=fmt))
    assert r.status_code in (200, 400, 422), r.text
    if r.status_code != 200:
        issues = r.json()["issue"]
        assert issues and all(i.get("diagnostics") for i in issues)
        assert issues[0]["details"]["coding"][0]["system"] == "https://fhir.nhs.uk/CodeSystem/http-error-codes"


def statements_of(client: TestClient, body: bytes | Json) -> tuple[int, int]:
    """Status and number of SQL statements of one delivery (an executemany counts once)."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = client.app.state.db.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", count)
    try:
        status = post(client, body).status_code
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return status, len(statements)


def test_a_message_is_stored_with_a_few_statements_whatever_its_number_of_resources(client: TestClient) -> None:
    # The resources of a message are written together: one select of their current versions, one
    # executemany each of versions, current rows and the search index (tokens, strings, dates), and one query
    # for the live Subscriptions (README "Benchmarks"). Examples of 10 to 15 entries take the same number;
    # before, each resource took five or more.
    counts = {name: statements_of(client, example(name)) for name in ("hip-msk-triage", "back-physio-medium")}
    assert {status for status, _ in counts.values()} == {200}
    assert len({n for _, n in counts.values()}) == 1, counts
    assert counts["hip-msk-triage"][1] <= 19, counts
    update = with_reason(json.loads(example("back-physio-medium")), "update", "update-count")
    assert statements_of(client, update)[1] <= 21


def test_a_site_red_flag_list_is_used_by_the_server(make_client: Any, tmp_path: Path) -> None:
    """ESCAPE_FHIR_RED_FLAGS reaches $process-message: a code on the site's list makes the Task not-eligible,
    naming the code and where it was found. (The knee OA code stands in for a site's own exclusion here: the
    example referral carries no other code.)"""
    listed = tmp_path / "red-flags.csv"
    listed.write_text("code,display,pathway\n239873007,Osteoarthritis of knee (site exclusion for this test),both\n")
    client = make_client(red_flags=listed)
    assert post(client, example("knee-gp")).status_code == 200
    (task,) = [e["resource"] for e in client.get("/Task").json()["entry"]]
    red = [
        i
        for i in task["input"]
        if (i["type"]["coding"][0]["system"], i["type"]["coding"][0]["code"]) == (codes.CS_CRITERION, "red-flags")
    ]
    assert red[0]["valueCodeableConcept"]["coding"][0]["code"] == "not-met"
    assert "239873007" in red[0]["valueCodeableConcept"]["text"]
    assert "Bundle.entry[" in red[0]["valueCodeableConcept"]["text"]


def test_an_unusable_site_red_flag_list_stops_the_server_starting(make_client: Any, tmp_path: Path) -> None:
    listed = tmp_path / "red-flags.csv"
    listed.write_text("code,display,pathway\n12345,not a concept,both\n")
    with pytest.raises(InputError):
        make_client(red_flags=listed)
