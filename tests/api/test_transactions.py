"""``POST /`` transactions as an integration engine sends them (Rhapsody / HealthShare style: conditional PUT of
Patient, Organization and Practitioner by identifier, conditional create of the HealthcareService, POST of the
ServiceRequest and its evidence with conditional references), per FHIR R4 http.html#trules, on SQLite and
PostgreSQL."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from escape_fhir.fhir.formats import dump, parse
from tests.api.conftest import MakeClient, example, message_headers

Json = dict[str, Any]
NHS, ODS, GMC, DOS = (
    "https://fhir.nhs.uk/Id/nhs-number",
    "https://fhir.nhs.uk/Id/ods-organization-code",
    "https://fhir.hl7.org.uk/Id/gmc-number",
    "https://fhir.nhs.uk/Id/dos-service-id",
)
PATIENT = f"Patient?identifier={NHS}|9990000018"
#: How an engine names what it holds no id of: a conditional PUT for these types, by their first identifier.
CONDITIONAL_PUT = ("Patient", "Organization", "Practitioner")


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, make_client: MakeClient) -> Iterator[TestClient]:
    if request.param == "sqlite":
        yield make_client()
    else:
        yield make_client(database_url=request.getfixturevalue("pg_url"))


def condition(resource: Json) -> str:
    identifier = resource["identifier"][0]
    return f"identifier={identifier['system']}|{identifier['value']}"


def engine_bundle(referral_id: str | None = None) -> Json:
    """knee-gp as an engine's transaction: no ids, conditional PUTs and conditional references."""
    message = json.loads(example("knee-gp"))
    entries = [copy.deepcopy(e) for e in message["entry"][1:]]
    entries[0]["resource"]["identifier"][0]["value"] = referral_id or str(uuid.uuid4())
    named: dict[str, str] = {}
    for e in entries:
        res = e["resource"]
        res.pop("id", None)
        res.pop("meta", None)
        kind = res["resourceType"]
        if kind in CONDITIONAL_PUT:
            named[e["fullUrl"]] = f"{kind}?{condition(res)}"
            # Percent-encoded, as engines' URL builders write it (http.html#transaction: request.url is a URL).
            e["request"] = {"method": "PUT", "url": f"{kind}?identifier={quote(condition(res)[11:], safe='')}"}
        elif kind == "HealthcareService":
            e["request"] = {"method": "POST", "url": kind, "ifNoneExist": condition(res)}
        else:
            e["request"] = {"method": "POST", "url": kind}
    text = json.dumps(entries)
    for full_url, conditional in named.items():
        text = text.replace(f'"reference": "{full_url}"', f'"reference": "{conditional}"')
    return {"resourceType": "Bundle", "type": "transaction", "entry": json.loads(text)}


def post(client: TestClient, bundle: Json) -> Any:
    return client.post("/", json=bundle)


def kinds(bundle: Json) -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle["entry"]]


def total(client: TestClient, kind: str, **params: str) -> int:
    r = client.get(f"/{kind}", params=params)
    assert r.status_code == 200, r.text
    found: int = r.json()["total"]
    return found


def test_an_engine_transaction_creates_a_referral_and_resolves_every_conditional_reference(client: TestClient) -> None:
    bundle = engine_bundle()
    r = post(client, bundle)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["type"] == "transaction-response" and len(answer["entry"]) == len(bundle["entry"])
    for e in answer["entry"]:  # the request's order, each with status, location, etag and lastModified
        response = e["response"]
        assert response["status"] == "201 Created"
        assert response["location"].endswith("/_history/1") and response["etag"] == 'W/"1"'
        assert response["lastModified"] and e["fullUrl"].endswith(response["location"].split("/_history")[0])
    created = {
        k: e["response"]["location"].split("/_history")[0] for k, e in zip(kinds(bundle), answer["entry"], strict=True)
    }
    sr = client.get(f"/{created['ServiceRequest']}").json()
    assert sr["subject"]["reference"] == created["Patient"]
    assert sr["performer"][0]["reference"] == created["HealthcareService"]
    role = client.get(f"/{sr['requester']['reference']}").json()
    assert role["practitioner"]["reference"] == created["Practitioner"]
    text = json.dumps([client.get(f"/{loc}").json() for loc in created.values()])
    assert "?identifier=" not in text and "urn:uuid:" not in text
    (task,) = client.get("/Task", params={"focus": created["ServiceRequest"]}).json()["entry"]
    assert task["resource"]["status"] == "requested" and task["resource"]["for"]["reference"] == created["Patient"]


def test_a_second_referral_updates_the_patient_and_organizations_it_names(client: TestClient) -> None:
    first = post(client, engine_bundle()).json()
    bundle = engine_bundle()
    bundle["entry"][1]["resource"]["telecom"] = [{"system": "phone", "value": "01632 960001", "use": "mobile"}]
    r = post(client, bundle)
    assert r.status_code == 200, r.text
    statuses = dict(zip(kinds(bundle), (e["response"]["status"] for e in r.json()["entry"]), strict=False))
    assert statuses["Patient"] == statuses["Practitioner"] == "200 OK"  # conditional update: one match
    assert statuses["HealthcareService"] == "200 OK"  # conditional create: one match, left as it was
    assert statuses["ServiceRequest"] == "201 Created"
    patient = next(e for e in r.json()["entry"] if "/Patient/" in e["fullUrl"])["response"]
    assert patient["etag"] == 'W/"2"' and patient["location"] == first["entry"][1]["response"]["location"][:-1] + "2"
    tasks = [e["resource"] for e in client.get("/Task").json()["entry"]]
    assert len(tasks) == 2 and {t["for"]["reference"] for t in tasks} == {patient["location"].split("/_history")[0]}
    assert client.get(f"/{patient['location'].split('/_history')[0]}").json()["telecom"][0]["value"] == "01632 960001"


def test_a_conditional_reference_that_names_nothing_fails_the_bundle(client: TestClient) -> None:
    bundle = engine_bundle()
    bundle["entry"][0]["resource"]["subject"]["reference"] = f"Patient?identifier={NHS}|9990000026"
    r = post(client, bundle)
    issue = r.json()["issue"][0]
    assert (r.status_code, issue["code"]) == (422, "not-found")
    assert issue["expression"] == ["Bundle.entry[0].resource.subject.reference"]
    assert total(client, "ServiceRequest") == total(client, "Task") == 0  # all or nothing


def test_conditions_naming_several_resources_are_412(client: TestClient) -> None:
    # Two referrals by message: intake keeps a Patient per referral, so the NHS number names two.
    patients = set()
    for _ in range(2):
        message = json.loads(example("knee-gp"))
        message["id"] = str(uuid.uuid4())
        message["entry"][1]["resource"]["identifier"][0]["value"] = str(uuid.uuid4())
        r = client.post("/$process-message", json=message, headers=message_headers())
        assert r.status_code == 200, r.text
        (patient,) = [e["resource"] for e in r.json()["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert patient["identifier"][0]["value"] == "9990000018"
        patients.add(patient["id"])
    assert len(patients) == 2, "the test needs two Patients of one NHS number"
    r = post(client, engine_bundle())
    issue = r.json()["issue"][0]
    assert (r.status_code, issue["code"], issue["expression"]) == (
        412,
        "multiple-matches",
        ["Bundle.entry[1].request.url"],
    )
    entries = engine_bundle()["entry"]
    patient, observation = entries[1], entries[-1]
    del observation["resource"]["derivedFrom"]  # names the QuestionnaireResponse, not sent this time
    patient["request"]["url"] = f"Patient?identifier={NHS}|9990000026"  # this one is new...
    patient["resource"]["identifier"][0]["value"] = "9990000026"
    assert observation["resource"]["subject"]["reference"] == PATIENT  # ...but the reference names two
    r = post(client, {"resourceType": "Bundle", "type": "transaction", "entry": [observation, patient]})
    issue = r.json()["issue"][0]
    assert (r.status_code, issue["code"], issue["expression"]) == (
        412,
        "multiple-matches",
        ["Bundle.entry[0].resource.subject.reference"],
    )
    assert total(client, "ServiceRequest") == 2


def test_conditional_update_creates_with_no_match_and_refuses_a_contradicting_id(client: TestClient) -> None:
    patient = copy.deepcopy(engine_bundle()["entry"][1])
    created = post(client, {"resourceType": "Bundle", "type": "transaction", "entry": [patient]})
    assert created.status_code == 200, created.text
    response = created.json()["entry"][0]["response"]
    assert response["status"] == "201 Created"
    patient["resource"]["id"] = "not-the-one"
    r = post(client, {"resourceType": "Bundle", "type": "transaction", "entry": [patient]})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.id"]


def test_processing_order_is_delete_post_put_get_and_the_answer_keeps_the_request_order(client: TestClient) -> None:
    first = post(client, engine_bundle()).json()
    patient_at = first["entry"][1]["response"]["location"].split("/_history")[0]
    observation_at = first["entry"][-1]["response"]["location"].split("/_history")[0]
    patient = client.get(f"/{patient_at}").json()
    patient["gender"] = "female"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": patient_at}},  # answered after the PUT below
            {
                "fullUrl": f"http://testserver/{patient_at}",
                "resource": patient,
                "request": {"method": "PUT", "url": patient_at},
            },
            {"request": {"method": "DELETE", "url": observation_at}},
            {"request": {"method": "GET", "url": f"ServiceRequest?patient={patient_at}"}},
        ],
    }
    r = post(client, bundle)
    assert r.status_code == 200, r.text
    read, put, deleted, search = r.json()["entry"]
    assert read["resource"]["gender"] == "female" and read["response"]["etag"] == 'W/"2"'
    assert put["response"]["status"] == "200 OK" and deleted["response"]["status"] == "204 No Content"
    assert search["resource"]["type"] == "searchset" and search["resource"]["total"] == 1
    assert client.get(f"/{observation_at}").status_code == 410


def test_two_entries_changing_one_resource_fail_the_bundle(client: TestClient) -> None:
    first = post(client, engine_bundle()).json()
    patient_at = first["entry"][1]["response"]["location"].split("/_history")[0]
    patient = client.get(f"/{patient_at}").json()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"http://testserver/{patient_at}",
                "resource": patient,
                "request": {"method": "PUT", "url": patient_at},
            },
            {
                "fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                "resource": patient,
                "request": {"method": "PUT", "url": PATIENT},
            },
        ],
    }
    r = post(client, bundle)
    assert r.status_code == 400 and "both change" in r.json()["issue"][0]["diagnostics"]
    assert client.get(f"/{patient_at}").headers["etag"] == 'W/"1"'


def test_a_failing_last_entry_rolls_back_every_earlier_one(client: TestClient) -> None:
    bundle = engine_bundle()
    bundle["entry"][-1]["request"] = {"method": "PUT", "url": "Observation/not-held", "ifMatch": 'W/"7"'}
    bundle["entry"][-1]["resource"]["id"] = "not-held"
    r = post(client, bundle)
    assert r.status_code == 412, r.text
    assert total(client, "ServiceRequest") == total(client, "Task") == 0
    assert "Patient/" not in json.dumps(r.json())


@pytest.mark.parametrize(
    ("request_", "status", "where"),
    [
        pytest.param(
            {"method": "PUT", "url": "Patient?name=Whitfield"}, 422, "request.url", id="unsupported-condition"
        ),
        pytest.param({"method": "PUT", "url": "Patient?"}, 400, "request.url", id="empty-condition"),
        pytest.param({"method": "DELETE", "url": PATIENT}, 422, "request.url", id="conditional-delete"),
        pytest.param({"method": "PUT", "url": "Patient?identifier=a%00b|c"}, 400, "request.url", id="nul-in-condition"),
        pytest.param({"method": "DELETE", "url": "Patient/" + "x" * 65}, 400, "request.url", id="not-an-id"),
        pytest.param({"method": "PATCH", "url": "Patient/x"}, 422, "request.method", id="patch"),
        pytest.param(
            {"method": "POST", "url": "Patient", "ifNoneExist": "family=Whitfield"},
            422,
            "request.ifNoneExist",
            id="unsupported-if-none-exist",
        ),
    ],
)
def test_what_is_not_supported_is_refused_where_it_is(
    client: TestClient, request_: Json, status: int, where: str
) -> None:
    patient = copy.deepcopy(engine_bundle()["entry"][1])
    patient["request"] = request_
    r = post(client, {"resourceType": "Bundle", "type": "transaction", "entry": [patient]})
    assert r.status_code == status, r.text
    assert r.json()["issue"][0]["expression"] == [f"Bundle.entry[0].{where}"]


def test_an_engine_transaction_in_xml_is_read_alike(client: TestClient) -> None:
    bundle = engine_bundle()
    r = client.post(
        "/",
        content=dump(bundle, "xml"),
        headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"},
    )
    assert r.status_code == 200, r.text
    answer = parse(r.content, "xml")
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * len(bundle["entry"])
    sr_at = answer["entry"][0]["response"]["location"].split("/_history")[0]
    patient_at = answer["entry"][1]["response"]["location"].split("/_history")[0]
    assert client.get(f"/{sr_at}").json()["subject"]["reference"] == patient_at


def test_simultaneous_engine_transactions_make_one_patient(make_client: MakeClient, pg_url: str) -> None:
    """Two servers on one PostgreSQL database, each given transactions naming the same Patient, Organizations
    and Practitioner at the same moment: conditions are matched and created one transaction at a time, so every
    answer names the same Patient (else later conditional updates would find two and fail with 412)."""
    servers = [make_client(database_url=pg_url), make_client(database_url=pg_url, migrate=False)]
    start = threading.Barrier(6)
    answers: list[Any] = []

    def send(n: int) -> None:
        bundle = engine_bundle()
        start.wait()
        answers.append(post(servers[n % 2], bundle))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers if a.status_code != 200]
    patients = {a.json()["entry"][1]["response"]["location"].split("/_history")[0] for a in answers}
    assert len(patients) == 1, patients
    assert post(servers[0], engine_bundle()).status_code == 200


def test_a_referral_may_name_a_patient_held_from_an_earlier_transaction(client: TestClient) -> None:
    """The engine sent the Patient before; this time the ServiceRequest names it by NHS number only. The
    reader is given the held Patient, so the referral is read and triaged as any other."""
    first = post(client, engine_bundle()).json()
    patient_at = first["entry"][1]["response"]["location"].split("/_history")[0]
    bundle = engine_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    r = post(client, bundle)
    assert r.status_code == 200, r.text
    sr_at = r.json()["entry"][0]["response"]["location"].split("/_history")[0]
    assert client.get(f"/{sr_at}").json()["subject"]["reference"] == patient_at
    (task,) = client.get("/Task", params={"focus": sr_at}).json()["entry"]
    assert task["resource"]["for"]["reference"] == patient_at
    decision = task["resource"]["input"][0]["valueCodeableConcept"]["coding"][0]["code"]
    assert decision == first_decision(client, first)


def first_decision(client: TestClient, answer: Json) -> str:
    sr_at = answer["entry"][0]["response"]["location"].split("/_history")[0]
    (task,) = client.get("/Task", params={"focus": sr_at}).json()["entry"]
    code: str = task["resource"]["input"][0]["valueCodeableConcept"]["coding"][0]["code"]
    return code
