"""The triage workflow: Task transitions with If-Match, the ServiceRequest's status following."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import example, message_headers

Json = dict[str, Any]


@pytest.fixture
def task(client: TestClient) -> Json:
    assert client.post("/$process-message", content=example("knee-gp"), headers=message_headers()).status_code == 200
    found: Json = client.get("/Task", params={"status": "requested"}).json()["entry"][0]["resource"]
    return found


def put(client: TestClient, task: Json, if_match: str | None, **changes: Any) -> Any:
    headers = {"Content-Type": "application/fhir+json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    return client.put(f"/Task/{task['id']}", json={**task, **changes}, headers=headers)


def service_request(client: TestClient, task: Json) -> Json:
    found: Json = client.get(f"/{task['focus']['reference']}").json()
    return found


def test_accept_then_complete_keeps_the_service_request_consistent(client: TestClient, task: Json) -> None:
    r = put(client, task, 'W/"1"', status="accepted")
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"2"'
    assert service_request(client, task)["status"] == "active"
    r = put(client, r.json(), 'W/"2"', status="completed")
    assert r.status_code == 200, r.text
    assert service_request(client, task)["status"] == "completed"
    assert client.get(f"/Task/{task['id']}/_history").json()["total"] == 3


def test_reject_needs_a_reason_and_revokes_the_referral(client: TestClient, task: Json) -> None:
    r = put(client, task, 'W/"1"', status="rejected")
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Task.statusReason"]
    r = put(client, task, 'W/"1"', status="rejected", statusReason={"text": "not eligible: age"})
    assert r.status_code == 200, r.text
    assert service_request(client, task)["status"] == "revoked"


def test_a_stale_if_match_is_412_and_a_missing_one_428(client: TestClient, task: Json) -> None:
    assert put(client, task, 'W/"1"', status="accepted").status_code == 200
    stale = put(client, task, 'W/"1"', status="completed")
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_PRECONDITION_FAILED"
    assert put(client, task, None, status="completed").status_code == 428
    assert client.get(f"/Task/{task['id']}").json()["status"] == "accepted"


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        pytest.param({"status": "completed"}, "Task.status", id="requested-cannot-complete"),
        pytest.param({"owner": {"reference": "Organization/other"}}, "Task.owner", id="owner-is-not-triage"),
    ],
)
def test_what_triage_may_not_do(client: TestClient, task: Json, changes: Json, where: str) -> None:
    r = put(client, task, 'W/"1"', **changes)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == [where]


def test_the_task_in_the_path_must_be_the_body(client: TestClient, task: Json) -> None:
    r = client.put("/Task/other", json=task, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 400
    assert client.put("/Task/nope", json={**task, "id": "nope"}, headers={"If-Match": 'W/"1"'}).status_code == 404
