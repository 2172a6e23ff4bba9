"""FHIR search (issue 15) on the referrals the example messages carry, on SQLite and on PostgreSQL: every
declared parameter type and its modifiers and prefixes, chains, result parameters, includes, Prefer handling."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from escape_fhir.fhir import codes
from tests.api.conftest import example, message_headers, postgres_answers

Json = dict[str, Any]
NAMES = ["knee-gp", "back-physio-medium", "back-self-low", "hip-msk-triage", "knee-not-eligible"]
NHS = codes.NHS_NUMBER


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from escape_fhir.api import create_app
    from escape_fhir.settings import Settings

    if request.param == "postgresql":
        if not postgres_answers():
            pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
        pg = request.getfixturevalue("pg_module_url")
        url = pg
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'db.sqlite3'}"
    client = TestClient(create_app(Settings(database_url=url)))
    client.__enter__()
    for name in NAMES:
        assert client.post("/$process-message", content=example(name), headers=message_headers()).status_code == 200
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def pg_module_url() -> Any:
    import uuid

    import psycopg

    from tests.api.conftest import PG_URL

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def get(client: TestClient, path: str, status: int = 200, **headers: str) -> Json:
    r = client.get(path, headers=headers)
    assert r.status_code == status, r.text
    found: Json = r.json()
    return found


def total(client: TestClient, path: str) -> int:
    return int(get(client, path)["total"])


def families(bundle: Json) -> list[str]:
    return [e["resource"]["name"][0]["family"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


def test_patient_by_identifier_name_and_birthdate(filled: TestClient) -> None:
    assert families(get(filled, f"/Patient?identifier={NHS}|9990000018")) == ["Whitfield"]
    assert total(filled, "/Patient?identifier=9990000018") == 1
    assert total(filled, "/Patient?identifier=|9990000018") == 0  # "|code": no system
    assert total(filled, f"/Patient?identifier={NHS}|") == 5  # "system|": any code of the system
    assert families(get(filled, "/Patient?name=whit")) == ["Whitfield"]  # starts with, any case
    assert families(get(filled, "/Patient?name=SIAN")) == ["Hughes"]
    assert total(filled, "/Patient?name=itfield") == 0
    assert total(filled, "/Patient?name:contains=itfie") == 1
    assert total(filled, "/Patient?name:exact=whitfield") == 0 and total(filled, "/Patient?name:exact=Whitfield") == 1
    assert total(filled, "/Patient?family=Hughes,Osei") == 2
    assert families(get(filled, "/Patient?birthdate=1958-03-14")) == ["Whitfield"]
    assert total(filled, "/Patient?birthdate=1984") == 2  # the year's range
    assert total(filled, "/Patient?birthdate=lt1971-07-02") == 1
    assert total(filled, "/Patient?birthdate=le1971-07-02") == 2
    assert total(filled, "/Patient?birthdate=gt1984-11-30") == 1
    assert total(filled, "/Patient?birthdate=ge1984-11-30") == 2
    assert total(filled, "/Patient?birthdate=ne1984") == 3
    assert total(filled, "/Patient?birthdate=sa1984") == 1 and total(filled, "/Patient?birthdate=eb1971") == 1
    assert total(filled, "/Patient?birthdate=ge1980&birthdate=lt1985") == 2  # repeated: AND
    assert total(filled, "/Patient?gender:not=female") == 2 == total(filled, "/Patient?gender=male")


def test_sort_by_declared_parameters(filled: TestClient) -> None:
    assert families(get(filled, "/Patient?_sort=family")) == ["Hughes", "Mensah", "Osei", "Pritchard", "Whitfield"]
    assert families(get(filled, "/Patient?_sort=-birthdate&_count=2")) == ["Mensah", "Hughes"]
    get(filled, "/Patient?_sort=colour", 400)


def test_clinical_resources_by_patient_code_and_composite(filled: TestClient) -> None:
    patient = get(filled, f"/Patient?identifier={NHS}|9990000034")["entry"][0]["resource"]["id"]
    observations = get(filled, f"/Observation?subject=Patient/{patient}&_count=50")
    assert observations["total"] >= 4
    risk = "http://loinc.org|91352-5$http://loinc.org|LA8982-6"
    assert total(filled, f"/Observation?code-value-concept={risk}") == 1
    assert total(filled, "/Observation?code-value-concept=91352-5$LA8982-6") == 1
    assert total(filled, "/Observation?code-value-concept=91352-5$LA6752-5") == 0  # low risk: nobody
    assert total(filled, f"/Observation?code=http://loinc.org|91351-7&patient={patient}") == 1
    responses = get(filled, f"/QuestionnaireResponse?subject=Patient/{patient}")
    assert responses["total"] >= 1
    url = responses["entry"][0]["resource"]["questionnaire"]
    assert total(filled, f"/QuestionnaireResponse?questionnaire={url}&patient={patient}") >= 1
    assert total(filled, f"/QuestionnaireResponse?questionnaire={url.partition('|')[0]}&patient={patient}") >= 1
    assert total(filled, f"/QuestionnaireResponse?questionnaire={url.partition('|')[0]}|0.0.1") == 0
    assert total(filled, "/QuestionnaireResponse?authored=gt2000") == get(filled, "/QuestionnaireResponse")["total"]
    assert total(filled, f"/Condition?patient={patient}") >= 0
    assert total(filled, f"/Encounter?patient={patient}&status=planned") == 1
    assert total(filled, "/Organization?_count=1") >= 1
    assert total(filled, "/HealthcareService?identifier=https://fhir.nhs.uk/Id/dos-service-id|nothing") == 0
    assert total(filled, "/Condition?code:missing=false") == total(filled, "/Condition")


def test_chained_parameters(filled: TestClient) -> None:
    assert total(filled, f"/Task?patient.identifier={NHS}|9990000018") == 1
    assert total(filled, "/ServiceRequest?patient.birthdate=lt1980") == 2
    assert total(filled, "/ServiceRequest?patient.family=osei") == 1
    assert total(filled, "/Task?patient:Patient.birthdate=1984") == 2
    get(filled, "/Task?owner.identifier=x", 400)  # owner may be several types: name one


def test_include_revinclude_and_iterate(filled: TestClient) -> None:
    page = get(filled, "/Task?status=requested&_include=Task:focus&_include=Task:patient&_count=2")
    modes = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in page["entry"]]
    assert [m for m in modes if m[0] == "match"] == [("match", "Task")] * 2
    assert sorted(t for m, t in modes if m == "include") == ["Patient", "Patient", "ServiceRequest", "ServiceRequest"]
    assert page["total"] == 5
    chained = get(filled, "/Task?_count=1&_include=Task:focus&_include:iterate=ServiceRequest:performer")
    included = {e["resource"]["resourceType"] for e in chained["entry"] if e["search"]["mode"] == "include"}
    assert {"ServiceRequest"} < included
    patient = get(filled, f"/Patient?identifier={NHS}|9990000018&_revinclude=ServiceRequest:patient")
    assert [e["resource"]["resourceType"] for e in patient["entry"]] == ["Patient", "ServiceRequest"]
    get(filled, "/Task?_include=ServiceRequest:patient", 400)  # another type's parameter needs :iterate
    get(filled, "/Task?_include=Task:status", 400)


def test_summary_elements_total_and_paging(filled: TestClient) -> None:
    counted = get(filled, "/Task?_summary=count")
    assert counted["total"] == 5 and counted["entry"] == []
    summary = get(filled, "/Patient?_summary=true&_count=1")["entry"][0]["resource"]
    assert "name" in summary and "identifier" in summary and "text" not in summary
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"} in summary[
        "meta"
    ]["tag"]
    only = get(filled, "/Patient?_elements=birthDate&_count=1")["entry"][0]["resource"]
    assert set(only) == {"resourceType", "id", "meta", "birthDate"}
    # A subsetted Task written back (its inputs and focus missing) is refused, not stored as the whole Task.
    part = get(filled, "/Task?_elements=status,intent&_count=1")["entry"][0]["resource"]
    part["status"] = "accepted"
    version = part["meta"]["versionId"]
    assert filled.put(f"/Task/{part['id']}", json=part, headers={"If-Match": f'W/"{version}"'}).status_code == 422
    untotalled = get(filled, "/Task?_total=none&_count=2")
    assert "total" not in untotalled and any(link["relation"] == "next" for link in untotalled["link"])
    ids = [get(filled, f"/Task?_sort=_id&_count=2&_offset={n}")["entry"] for n in (0, 2, 4)]
    seen = [e["resource"]["id"] for page in ids for e in page]
    assert len(seen) == 5 == len(set(seen)) and seen == sorted(seen)
    assert total(filled, f"/Task?_id={seen[0]},{seen[1]}") == 2
    assert total(filled, "/Task?_lastUpdated=gt2000-01-01T00:00:00Z") == 5


def test_unknown_parameters_follow_prefer_handling(filled: TestClient) -> None:
    refused = get(filled, "/Task?colour=red", 400)
    assert refused["resourceType"] == "OperationOutcome" and "colour" in refused["issue"][0]["diagnostics"]
    get(filled, "/Task?colour=red", 400, Prefer="handling=strict")
    lenient = get(filled, "/Task?colour=red&status=requested", Prefer="handling=lenient")
    assert lenient["total"] == 5
    self_link = next(link["url"] for link in lenient["link"] if link["relation"] == "self")
    assert "colour" not in self_link and "status=requested" in self_link
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    # A bad value or modifier of a known parameter is refused whatever the preference.
    get(filled, "/Patient?birthdate=yesterday", 400, Prefer="handling=lenient")
    get(filled, "/Patient?name:below=x", 400, Prefer="handling=lenient")


def test_capability_statement_lists_every_parameter_and_include(filled: TestClient) -> None:
    from escape_fhir.storage.search_params import PARAMS

    cs = get(filled, "/metadata")
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    for param in PARAMS:
        listed = {p["name"]: p["type"] for p in resources[param.resource_type]["searchParam"]}
        assert listed[param.name] == param.type, param
    assert "Task:focus" in resources["Task"]["searchInclude"]
    assert "Task:focus" in resources["ServiceRequest"]["searchRevInclude"]
    assert {p["name"] for p in resources["Task"]["searchParam"]} >= {"patient.identifier", "_summary", "_elements"}
