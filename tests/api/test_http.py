"""HTTP conventions: every bad request gets its status and an OperationOutcome, never a 500 (FHIR http.html)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, example, message_headers

JSON = "application/fhir+json"
BOMB = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<Bundle xmlns="http://hl7.org/fhir"><type value="&lol2;"/></Bundle>"""

CASES: list[Any] = [
    pytest.param(
        "POST", "/$process-message", b'{"resourceType": "Bundle",', {"Content-Type": JSON}, 400, id="malformed-json"
    ),
    pytest.param(
        "POST",
        "/$process-message",
        b"<Bundle xmlns='http://hl7.org/fhir'><type",
        {"Content-Type": "application/fhir+xml"},
        400,
        id="malformed-xml",
    ),
    pytest.param(
        "POST", "/$process-message", BOMB, {"Content-Type": "application/fhir+xml"}, 400, id="entity-expansion-xml"
    ),
    pytest.param("POST", "/$process-message", b"[1, 2]", {"Content-Type": JSON}, 400, id="json-array"),
    pytest.param(
        "POST", "/$process-message", b'{"resourceType": "Patient"}', {"Content-Type": JSON}, 400, id="not-a-bundle"
    ),
    pytest.param("POST", "/$process-message", b"{}", {"Content-Type": "text/plain"}, 415, id="wrong-content-type"),
    pytest.param(
        "POST",
        "/$process-message",
        b"name=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        id="form-post",
    ),
    pytest.param("GET", "/metadata", b"", {"Accept": "text/html"}, 406, id="accept-html"),
    pytest.param("GET", "/metadata?_format=html", b"", {}, 406, id="format-html"),
    pytest.param("GET", "/Foo/1", b"", {}, 404, id="unknown-type"),
    pytest.param("GET", "/Patient/unknown", b"", {}, 404, id="unknown-id"),
    pytest.param("GET", "/nothing/here/at/all", b"", {}, 404, id="unknown-route"),
    pytest.param("DELETE", "/Patient/1", b"", {}, 405, id="wrong-method"),
    pytest.param("GET", "/$process-message", b"", {}, 405, id="get-process-message"),
    pytest.param("GET", "/Practitioner", b"", {}, 405, id="search-not-supported"),
    pytest.param(
        "PUT",
        "/Task/1",
        b'{"resourceType": "Task"',
        {"Content-Type": JSON, "If-Match": 'W/"1"'},
        400,
        id="task-malformed",
    ),
    pytest.param(
        "POST",
        "/",
        b'{"resourceType": "Bundle", "type": "batch"}',
        {"Content-Type": JSON},
        400,
        id="batch-not-transaction",
    ),
    pytest.param("POST", "/$validate", b"\xff\xfe", {"Content-Type": JSON}, 400, id="not-utf8"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), CASES)
def test_bad_requests(
    client: TestClient, method: str, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    if path == "/$process-message" and method == "POST":
        headers = {**message_headers(), **headers}
    r = client.request(method, path, content=body or None, headers=headers)
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error" and outcome["issue"][0]["diagnostics"]


def test_a_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=4096)
    r = client.post("/$process-message", content=example("knee-gp"), headers=message_headers())
    assert r.status_code == 413 and r.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_PAYLOAD_TOO_LARGE"


def test_errors_follow_the_negotiated_format(client: TestClient) -> None:
    r = client.get("/Patient/unknown", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 404 and r.text.startswith("<?xml") and "OperationOutcome" in r.text
    assert client.get("/Patient/unknown?_format=json", headers={"Accept": "application/fhir+xml"}).json()


def test_accept_with_quality_values(client: TestClient) -> None:
    r = client.get("/metadata", headers={"Accept": "text/html;q=0.9, application/fhir+xml;q=0.8, */*;q=0.1"})
    assert r.headers["content-type"].startswith("application/fhir+xml")
