"""Asynchronous responses (issue 5, item 4; nhs-standards.md 1.7): the receiver's triage outcome goes back to
the sender as a ``servicerequest-response`` through the receiver's outbox, and the sender's ``$process-message``
updates its own record of the referral. Two real servers and both runners on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from escape_fhir.fhir import codes
from escape_fhir.service.responses import response_bundle
from escape_fhir.storage.outbox import Origin, Outbox
from tests.api.conftest import MakeClient, free_port, make_client, message_headers  # noqa: F401 - fixture
from tests.helpers import ROOT
from tests.transport.outbox_fixtures import (  # noqa: F401 - fixtures
    Sender,
    ServerOn,
    receiver,
    referral_message,
    sender,
    spawn_runner,
    until,
)

Json = dict[str, Any]


def source_endpoint(data: bytes) -> str:
    endpoint: str = json.loads(data)["entry"][0]["resource"]["source"]["endpoint"]
    return endpoint


def triage(server: ServerOn, identifier: str, *steps: Json) -> None:
    """Move the receiver's Task of a referral through ``steps`` (PUT /Task with If-Match)."""
    params = {"identifier": f"https://w3id.org/escape-fhir/Id/referral|{identifier}"}
    sr = httpx.get(f"{server.url}/ServiceRequest", params=params).json()["entry"][0]["resource"]
    task = httpx.get(f"{server.url}/Task", params={"focus": f"ServiceRequest/{sr['id']}"}).json()["entry"][0]
    task = task["resource"]
    for change in steps:
        headers = {"If-Match": f'W/"{task["meta"]["versionId"]}"', "Content-Type": "application/fhir+json"}
        answer = httpx.put(f"{server.url}/Task/{task['id']}", json={**task, **change}, headers=headers)
        assert answer.status_code == 200, answer.text
        task = answer.json()


def test_triage_outcomes_reach_the_sender(
    tmp_path: Path,
    sender: Sender,  # noqa: F811
    receiver: Callable[..., ServerOn],  # noqa: F811
) -> None:
    (tmp_path / "sender").mkdir()
    ours = ServerOn(free_port(), sender.url, tmp_path / "sender" / "server.log")
    ours.wait()
    try:
        accepted, accepted_id = referral_message("knee-gp")
        rejected, rejected_id = referral_message("back-physio-medium")
        routes = {source_endpoint(m): ours.url for m in (accepted, rejected)}
        env = {"ESCAPE_FHIR_ROUTES": json.dumps(routes)}
        theirs = receiver(env=env)
        first, second = sender.enqueue(accepted, theirs.url), sender.enqueue(rejected, theirs.url)
        sender.spawn_runner()
        # The receiver's runner is the sender fixture's to stop too, or it outlives the test (and the run).
        sender.processes.append(spawn_runner(tmp_path / "receiver-runner.log", theirs.database_url, env))
        until(lambda: all(m.state == "delivered" for m in sender.messages()))
        triage(theirs, accepted_id, {"status": "accepted"}, {"status": "completed"})
        triage(theirs, rejected_id, {"status": "rejected", "statusReason": {"text": "not eligible: age"}})
        until(lambda: [m.reply_status for m in sender.messages()] == ["completed", "rejected"])
        check_sender_record(ours, sender, {first: "completed", second: "revoked"})
        check_conversation(theirs, sender)
    finally:
        ours.stop()


def check_sender_record(ours: ServerOn, outbox: Sender, expected: dict[int, str]) -> None:
    """The sender's copy of each ServiceRequest and the mirrored Task show the receiver's decision."""
    for message in outbox.messages():
        copy = httpx.get(f"{ours.url}/ServiceRequest/{message.service_request_id}").json()
        assert copy["status"] == expected[message.id]
        focus = {"focus": f"ServiceRequest/{message.service_request_id}"}
        (task,) = [e["resource"] for e in httpx.get(f"{ours.url}/Task", params=focus).json()["entry"]]
        assert task["status"] == message.reply_status
        assert task["identifier"][0]["value"].startswith("ESCAPE-")  # the receiver's case reference
    rejected = httpx.get(f"{ours.url}/Task", params={"status": "rejected"}).json()["entry"][0]["resource"]
    assert rejected["statusReason"] == {"text": "not eligible: age"}


def check_conversation(theirs: ServerOn, outbox: Sender) -> None:
    """Responses: one per decision, delivered, same X-Correlation-ID as the request, a new X-Request-ID each,
    ``response.identifier`` the request's Bundle id (nhs-standards.md 1.7)."""
    from escape_fhir.storage import Database

    db = Database.from_url(theirs.database_url)
    with db.read() as repo:
        responses = Outbox(repo.session).listing(kind="response")
        bodies = [Outbox(repo.session).get(m.id, with_body=True) for m in responses]
    db.dispose()
    requests = {m.bundle_id: m for m in outbox.messages()}
    assert [m.state for m in responses] == ["delivered"] * 3
    for message in bodies:
        assert message is not None
        header = json.loads(message.body)["entry"][0]["resource"]
        assert header["eventCoding"]["code"] == "servicerequest-response"
        assert header["response"]["code"] == "ok"
        request = requests[header["response"]["identifier"]]
        assert message.correlation_id == request.correlation_id
    request_ids = {m.request_id for m in responses} | {m.request_id for m in requests.values()}
    assert len(request_ids) == 5


def test_a_response_to_nothing_we_sent_is_422(make_client: MakeClient) -> None:  # noqa: F811
    client = make_client()
    origin = Origin(1, str(uuid.uuid4()), "c-1", "https://fhir.nhs.uk/Id/ods-organization-code|B86001", None)
    sr: Json = {"resourceType": "ServiceRequest", "id": str(uuid.uuid4()), "status": "active", "intent": "plan"}
    sr["subject"] = {"reference": "Patient/p1"}
    task = {"resourceType": "Task", "id": str(uuid.uuid4()), "status": "accepted", "intent": "order"}
    bundle = response_bundle(origin, sr, task, "2026-11-26T12:00:00.000Z")
    answer = client.post("/$process-message", json=bundle, headers=message_headers())
    assert answer.status_code == 422, answer.text
    (issue,) = answer.json()["issue"]
    assert issue["code"] == "not-found"
    assert issue["expression"] == ["Bundle.entry[0].resource.response.identifier"]
    assert origin.bundle_id in issue["diagnostics"]


def _resolved(bundle: Json, reference: Json) -> Json:
    found: Json = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == reference["reference"])
    return found


def test_response_header_names_both_organizations_as_the_request_did() -> None:
    """BaRS response MessageHeader: ``destination.receiver`` and ``sender`` reference Organizations of the
    Bundle; the request's sender receives the response and its receiver sends it (roles reverse, 1.7)."""
    request: Json = json.loads((ROOT / "examples" / "bundles" / "knee-gp.message.json").read_bytes())
    by_url = {e["fullUrl"]: e["resource"] for e in request["entry"]}
    request_header = request["entry"][0]["resource"]
    origin = Origin(
        1, request["id"], "c-1", request_header["source"]["endpoint"], "https://fhir.nhs.uk/Id/dos-service-id|1"
    )
    sr = {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "plan"}
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "x", "value": "1"}]}
    task = {"resourceType": "Task", "id": "t1", "status": "accepted", "intent": "order"}
    bundle = response_bundle(
        origin, {**sr, "subject": {"reference": "Patient/p1"}}, task, "2026-11-26T12:00:00Z", request, patient
    )
    header = bundle["entry"][0]["resource"]
    assert bundle["meta"]["versionId"] == codes.BARS_VERSION_ID
    to_org = _resolved(bundle, header["destination"][0]["receiver"])
    from_org = _resolved(bundle, header["sender"])
    assert to_org["identifier"] == by_url[request_header["sender"]["reference"]]["identifier"]
    assert from_org["identifier"] == by_url[request_header["destination"][0]["receiver"]["reference"]]["identifier"]
    assert _resolved(bundle, bundle["entry"][1]["resource"]["subject"])["id"] == "p1"
    assert _resolved(bundle, header["focus"][0])["resourceType"] == "ServiceRequest"
    # Without the request (not in the log), the endpoints still identify both parties.
    bare = response_bundle(origin, sr, task, "2026-11-26T12:00:00Z")
    bare_header = bare["entry"][0]["resource"]
    them = _resolved(bare, bare_header["destination"][0]["receiver"])
    assert them["identifier"] == [dict(zip(("system", "value"), origin.source_endpoint.split("|"), strict=True))]
    assert _resolved(bare, bare_header["sender"])["identifier"][0]["value"] == "1"
