"""Subscriptions in process (issue 15): what each write queues, once per matching version, in the write's own
transaction; off and deleted Subscriptions queue nothing; a Subscription never blocks the change it watches."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from escape_fhir.service.common import now
from escape_fhir.service.subscriptions import NOTIFICATION
from escape_fhir.storage.outbox import Outbox, OutboxMessage
from tests.api.conftest import example, message_headers

Json = dict[str, Any]


def subscribe(client: TestClient, criteria: str, **channel: Any) -> Json:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook", **channel},
    }
    r = client.post("/Subscription", json=body)
    assert r.status_code == 201, r.text
    created: Json = r.json()
    return created


def notifications(client: TestClient) -> list[OutboxMessage]:
    with client.app.state.db.read() as repo:  # type: ignore[attr-defined]
        return Outbox(repo.session).listing(kind=NOTIFICATION)


def send(client: TestClient, name: str) -> None:
    assert client.post("/$process-message", content=example(name), headers=message_headers()).status_code == 200


def test_each_matching_version_is_queued_once_with_its_payload(client: TestClient) -> None:
    requested = subscribe(client, "Task?status=requested", payload="application/fhir+xml")
    back = subscribe(client, "ServiceRequest?patient.birthdate=ge1980")  # the back referrals' patients
    send(client, "knee-gp")  # born 1958: its Task only
    send(client, "back-self-low")  # born 1990: its Task and its ServiceRequest
    queued = notifications(client)
    by_subscription = {s: [m for m in queued if m.subscription_id == s] for s in (requested["id"], back["id"])}
    assert len(by_subscription[requested["id"]]) == 2 and len(by_subscription[back["id"]]) == 1
    xml = by_subscription[requested["id"]][0]
    assert xml.body_format == "xml" and xml.bundle_id.startswith(f"Subscription/{requested['id']}/Task/")
    with client.app.state.db.read() as repo:  # type: ignore[attr-defined]
        body = Outbox(repo.session).get(xml.id, with_body=True)
    assert body is not None and b'<Task xmlns="http://hl7.org/fhir">' in body.body and b"requested" in body.body
    assert by_subscription[back["id"]][0].body == b""  # no payload: an empty POST
    assert len({m.bundle_id for m in queued}) == len(queued)  # one per Subscription and version


def test_off_and_deleted_subscriptions_queue_nothing(client: TestClient) -> None:
    off = subscribe(client, "Task?status=requested")
    gone = subscribe(client, "Task?status=requested")
    version = off["meta"]["versionId"]
    r = client.put(f"/Subscription/{off['id']}", json={**off, "status": "off"}, headers={"If-Match": f'W/"{version}"'})
    assert r.status_code == 200 and r.json()["status"] == "off"
    assert client.put(f"/Subscription/{off['id']}", json=off, headers={"If-Match": 'W/"1"'}).status_code == 412
    assert client.delete(f"/Subscription/{gone['id']}").status_code == 204
    assert client.get(f"/Subscription/{gone['id']}").status_code == 410
    send(client, "knee-gp")
    assert notifications(client) == []
    assert client.get("/Subscription?status=off").json()["total"] == 1


def test_a_subscription_that_no_longer_parses_never_blocks_a_referral(client: TestClient) -> None:
    sub = subscribe(client, "Task?status=requested")
    with client.app.state.db.write() as repo:  # type: ignore[attr-defined]
        repo.save({**sub, "criteria": "Task?withdrawn-parameter=x"}, now())  # as an older version might hold
    send(client, "knee-gp")
    assert client.get("/Task").json()["total"] == 1
    shown = client.get(f"/Subscription/{sub['id']}").json()
    assert shown["status"] == "error" and "withdrawn-parameter" in shown["error"]
    assert notifications(client) == []


SUB = {
    "resourceType": "Subscription",
    "status": "requested",
    "reason": "worklist",
    "criteria": "Task?status=requested",
    "channel": {"type": "rest-hook", "endpoint": "https://triage.example.nhs.uk/hook"},
}


def test_only_a_triage_token_may_subscribe_and_only_to_configured_hosts(make_client: Any) -> None:
    tokens = {"s7Qx2mVb9LkP4nRw8TzY1cHd": ["submit", "read"], "t3Jf6gNq0WeR5uXa2BvM8kLs": ["triage", "read"]}
    guarded = make_client(tokens=tokens)
    sender = {"Authorization": "Bearer s7Qx2mVb9LkP4nRw8TzY1cHd"}
    triage = {"Authorization": "Bearer t3Jf6gNq0WeR5uXa2BvM8kLs"}
    assert guarded.post("/Subscription", json=SUB, headers=sender).status_code == 403
    # Access control without a list of hosts: the server calls out to nobody.
    r = guarded.post("/Subscription", json=SUB, headers=triage)
    assert r.status_code == 422 and "ESCAPE_FHIR_SUBSCRIPTION_HOSTS" in r.text
    listed = make_client(tokens=tokens, subscription_hosts=["triage.example.nhs.uk", "127.0.0.1:9000"])
    assert listed.post("/Subscription", json=SUB, headers=triage).status_code == 201
    for elsewhere in ("http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9001/hook", "http://x@evil.test/"):
        moved = {**SUB, "channel": {**SUB["channel"], "endpoint": elsewhere}}
        r = listed.post("/Subscription", json=moved, headers=triage)
        assert r.status_code == 422 and "Subscription.channel.endpoint" in r.text, elsewhere
    ok = {**SUB, "channel": {**SUB["channel"], "endpoint": "http://127.0.0.1:9000/hook"}}
    assert listed.post("/Subscription", json=ok, headers=triage).status_code == 201


def test_a_transaction_cannot_make_a_subscription_unchecked(client: TestClient) -> None:
    moved = {**SUB, "channel": {**SUB["channel"], "endpoint": "http://169.254.169.254/"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:4f1c2a9e-0000-4000-8000-000000000001",
                "resource": moved,
                "request": {"method": "POST", "url": "Subscription"},
            }
        ],
    }
    r = client.post("/", json=bundle)
    assert r.status_code == 422 and "Subscription" in r.text
    assert client.get("/Subscription").json()["total"] == 0
