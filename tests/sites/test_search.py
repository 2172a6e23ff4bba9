"""``GET /HealthcareService``, ``/Location`` and ``/Endpoint`` over HTTP on SQLite and PostgreSQL (skipped
when none answers), ``$route``, and ``/metadata`` naming each parameter with its SearchParameter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from escape_fhir.storage import Database
from tests.api.conftest import MakeClient, example, make_client, pg_url  # noqa: F401 - fixtures
from tests.helpers import ROOT
from tests.sites.directory import load


@pytest.fixture(params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, make_client: MakeClient, tmp_path: Path) -> Iterator[Any]:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    client = make_client(database_url=url)
    db = Database.from_url(url)
    load(db)  # the example directory
    yield client
    db.dispose()


def ids(client: Any, path: str, **params: str) -> list[str]:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    found = [e["resource"]["id"] for e in bundle["entry"]]
    assert bundle["total"] >= len(found)
    return found


CASES = [
    pytest.param(
        "/HealthcareService",
        {"postcode": "ls6 1ab"},
        ["site-kh-moorside", "site-back-riverside", "site-kh-riverside"],
        id="postcode: sector or district",
    ),
    pytest.param(
        "/HealthcareService",
        {"postcode": "LS7 2XY", "program": "knee-hip"},
        ["site-kh-hillside", "site-kh-riverside"],
        id="postcode and programme",
    ),
    pytest.param("/HealthcareService", {"coverage": "LS6 1"}, ["site-kh-moorside"], id="coverage exactly"),
    pytest.param(
        "/HealthcareService", {"referral-source": "orthopaedic-surgeon"}, ["site-kh-moorside"], id="referral source"
    ),
    pytest.param(
        "/HealthcareService",
        {"program": "https://w3id.org/escape-fhir/CodeSystem/escape-pain-programme|back"},
        ["site-back-riverside"],
        id="program with system",
    ),
    pytest.param("/HealthcareService", {"program": "http://other|back"}, [], id="another system"),
    pytest.param("/HealthcareService", {"identifier": "kh-hillside"}, ["site-kh-hillside"], id="identifier"),
    pytest.param(
        "/HealthcareService",
        {"organization": "Organization/ods-RXX01"},
        ["site-back-riverside", "site-kh-riverside"],
        id="organization",
    ),
    pytest.param("/HealthcareService", {"name": "hill"}, ["site-kh-hillside"], id="name starts with"),
    pytest.param(
        "/HealthcareService",
        {"referral-source": "gp,orthopaedic-surgeon", "program": "knee-hip"},
        ["site-kh-hillside", "site-kh-moorside", "site-kh-riverside"],
        id="OR",
    ),
    pytest.param("/Location", {"near": "53.83|-1.54|1|km"}, ["site-kh-hillside"], id="near 1 km"),
    pytest.param(
        "/Location",
        {"near": "53.83|-1.54|5000|m"},
        ["site-kh-hillside", "site-back-riverside", "site-kh-riverside"],
        id="near in metres, nearest first",
    ),
    pytest.param("/Location", {"address-postalcode": "LS16"}, ["site-kh-moorside"], id="postal code"),
    pytest.param(
        "/Endpoint",
        {"connection-type": "email,mesh"},
        ["site-kh-hillside-mesh", "site-kh-moorside-email"],
        id="connection type",
    ),
    pytest.param(
        "/Endpoint",
        {"organization": "ods-RXX03"},
        ["site-kh-moorside-email", "site-kh-moorside-phone"],
        id="endpoint organization",
    ),
]


@pytest.mark.parametrize(("path", "params", "expected"), CASES)
def test_directory_searches(served: Any, path: str, params: dict[str, str], expected: list[str]) -> None:
    assert ids(served, path, **params) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("postcode=nowhere", "postcode: 'nowhere' is not a UK postcode"),
        ("program=hips", "program: 'hips' is not a programme"),
        ("colour=red", "colour: unknown search parameter for HealthcareService"),
        ("_count=many", "_count: a whole number"),
    ],
    ids=["postcode", "programme", "unknown", "count"],
)
def test_bad_searches_are_400_with_the_parameter_named(served: Any, query: str, message: str) -> None:
    answer = served.get(f"/HealthcareService?{query}")
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["diagnostics"] == message or message in answer.text


def test_paging(served: Any) -> None:
    first = served.get("/HealthcareService", params={"_count": "3"}).json()
    assert (first["total"], len(first["entry"])) == (4, 3)
    (following,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    rest = served.get(following.removeprefix("http://testserver")).json()
    assert len(rest["entry"]) == 1


def test_near_is_refused_when_malformed(served: Any) -> None:
    assert served.get("/Location", params={"near": "53.8|-1.5|2|miles"}).status_code == 400
    assert served.get("/Location", params={"near": "north|west"}).status_code == 400


def test_route_operation(served: Any) -> None:
    body = example("knee-gp")
    for path in ("/$route", "/ServiceRequest/$route"):
        answer = served.post(path, content=body, headers={"Content-Type": "application/fhir+json"})
        assert answer.status_code == 200
        params = {p["name"]: p for p in answer.json()["parameter"]}
        assert params["routed"]["valueBoolean"] is True
        parts = {p["name"]: p for p in params["choice"]["part"]}
        assert parts["site"]["valueReference"]["reference"] == "HealthcareService/site-kh-riverside"
        assert parts["match"]["valueCode"] == "district"
    wrapped = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": __import__("json").loads(body)}],
    }
    assert served.post("/$route", json=wrapped, headers={"Content-Type": "application/fhir+json"}).status_code == 200
    patient = {"resourceType": "Patient"}
    assert served.post("/$route", json=patient, headers={"Content-Type": "application/fhir+json"}).status_code == 400


def test_route_operation_without_a_postcode_is_422(served: Any) -> None:
    import json

    bundle = json.loads(example("knee-gp"))
    for entry in bundle["entry"]:
        entry["resource"].pop("address", None)
    answer = served.post("/$route", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert answer.status_code == 422
    assert answer.json()["issue"][0]["expression"] == ["patient.address.postcode"]


def test_metadata_names_each_parameter_and_its_search_parameter(served: Any) -> None:
    statement = served.get("/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    service = {p["name"]: p for p in resources["HealthcareService"]["searchParam"]}
    assert (
        service["postcode"]["definition"] == "https://w3id.org/escape-fhir/SearchParameter/HealthcareService-postcode"
    )
    assert service["program"]["definition"] == "http://hl7.org/fhir/SearchParameter/HealthcareService-program"
    assert {"code": "search-type"} in resources["Location"]["interaction"]
    assert "near" in {p["name"] for p in resources["Location"]["searchParam"]}
    assert "connection-type" in {p["name"] for p in resources["Endpoint"]["searchParam"]}
    assert "route" in {o["name"] for o in statement["rest"][0]["operation"]}
    for kind, params in resources.items():
        for param in params.get("searchParam", []):
            url = param.get("definition", "")
            if url.startswith("https://w3id.org/escape-fhir/SearchParameter/"):
                assert (ROOT / "profiles" / f"SearchParameter-{url.rsplit('/', 1)[1]}.json").exists(), (kind, url)


def test_the_postcode_search_reads_the_area_index(tmp_path: Path) -> None:
    """On SQLite the covered-area lookup uses ix_site_area_area (the plan names the index)."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    db.migrate()
    try:
        with db.engine.connect() as conn:
            plan = conn.execute(text("EXPLAIN QUERY PLAN SELECT site_id FROM site_area WHERE area IN ('LS6 1', 'LS6')"))
            assert any("ix_site_area_area" in str(row) for row in plan)
    finally:
        db.dispose()
