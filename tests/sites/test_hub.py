"""Hub mode end to end: a hub (``serve --hub`` settings, in process) receives referrals, routes each one to
its site from the directory and forwards it through its outbox to the site's receiver, a real
``escape-fhir serve`` on loopback: exactly once, also when the sender delivers the same message again;
email/phone-only sites go on the "to contact" list; a triage re-route sends the referral to another site;
completing the Task tells the referrer the site's signposting options."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from escape_fhir.fhir.formats import parse
from escape_fhir.sites import codes as sc
from escape_fhir.sites.hub import routes_of
from escape_fhir.storage import Database
from escape_fhir.storage.outbox import Outbox, OutboxMessage
from escape_fhir.transport.outbox import ClientTransport, Runner
from tests.api.conftest import MakeClient, make_client, message_headers, pg_url  # noqa: F401 - fixture
from tests.sites.directory import load, row
from tests.transport.outbox_fixtures import FAST_POLICY, ServerOn, receiver, referral_message, until  # noqa: F401

Json = dict[str, Any]
HUB_ENDPOINT = "https://fhir.nhs.uk/Id/dos-service-id|2000072489"  # where knee-gp.message.json is addressed


class Hub:
    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.db = Database.from_url(url)

    def post(self, data: bytes, request_id: str | None = None) -> Any:
        return self.client.post("/$process-message", content=data, headers=message_headers(request_id))

    def messages(self) -> list[OutboxMessage]:
        with self.db.read() as repo:
            return Outbox(repo.session).listing()

    def deliver(self) -> None:
        runner = Runner(self.db, ClientTransport(), FAST_POLICY)

        def settled() -> bool:
            runner.run_once()
            return all(m.state in ("delivered", "dead") for m in self.messages())

        until(settled)

    def task(self, number: int = 1) -> Json:
        found = self.client.get("/Task", params={"identifier": f"ESCAPE-{number:06d}"}).json()
        return dict(found["entry"][0]["resource"])


@pytest.fixture
def hub(make_client: MakeClient, tmp_path: Path) -> Iterator[Hub]:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    made = Hub(make_client(database_url=url, hub=True), url)
    yield made
    made.db.dispose()


@pytest.fixture
def pg_hub(make_client: MakeClient, pg_url: str) -> Iterator[Hub]:  # noqa: F811
    made = Hub(make_client(database_url=pg_url, hub=True), pg_url)
    yield made
    made.db.dispose()


def inputs(task: Json, code: str) -> list[Any]:
    return [
        i.get("valueReference", {}).get("reference") or i.get("valueString")
        for i in task.get("input") or []
        if i["type"]["coding"][0] == {"system": sc.CS_ROUTING, "code": code}
    ]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_referral_is_forwarded_to_its_site_exactly_once(
    database: str,
    request: pytest.FixtureRequest,
    receiver: Callable[..., ServerOn],  # noqa: F811
) -> None:
    hub: Hub = request.getfixturevalue("hub" if database == "sqlite" else "pg_hub")
    site = receiver()
    load(hub.db, [row("leeds", bars_endpoint=site.url, covers="LS6"), row("far", covers="M1", bars_endpoint=site.url)])
    data, identifier = referral_message("knee-gp")  # patient postcode LS6 2AB, a GP referral
    assert hub.post(data).status_code == 200
    assert hub.post(data).status_code == 200  # the sender's retry: answered from the log, not routed again
    (queued,) = hub.messages()
    assert queued.destination == site.url
    forwarded = parse(_body(hub, queued.id))
    header = forwarded["entry"][0]["resource"]
    assert header["destination"][0]["endpoint"] == site.url
    assert header["destination"][0]["receiver"]["identifier"]["value"] == "RXX99"
    assert header["source"]["endpoint"] == HUB_ENDPOINT  # the site answers the hub
    assert forwarded["id"] != json.loads(data)["id"]
    task = hub.task()
    assert inputs(task, sc.ROUTED_SITE) == ["HealthcareService/site-leeds"]
    assert "covers district LS6 (LS6 2AB)" in inputs(task, sc.ROUTING_REASON)
    hub.deliver()
    hub.deliver()  # nothing more to send
    assert [(m.state, m.last_status) for m in hub.messages()] == [("delivered", 200)]
    assert site.count(identifier) == 1 and site.count() == 1


def _body(hub: Hub, message_id: int) -> bytes:
    with hub.db.read() as repo:
        (claimed,) = [m for m in Outbox(repo.session).listing() if m.id == message_id]
        from sqlalchemy import select

        from escape_fhir.storage import tables as t

        return bytes(repo.session.execute(select(t.outbox.c.body).where(t.outbox.c.id == claimed.id)).scalar_one())


def test_no_site_leaves_the_referral_here_with_the_reasons_and_alternatives(hub: Hub) -> None:
    load(hub.db, [row("manchester", covers="M1", postcode="M1 1AE"), row("leeds-msk", sources="msk-triage")])
    data, _ = referral_message("knee-gp")
    assert hub.post(data).status_code == 200
    assert hub.messages() == []  # nothing forwarded
    task = hub.task()
    assert inputs(task, sc.ROUTED_SITE) == []
    (reason,) = inputs(task, sc.ROUTING_REASON)
    assert reason.startswith("not routed: no site covers LS6 2AB")
    assert inputs(task, sc.ROUTING_ALTERNATIVE) == ["HealthcareService/site-leeds-msk"]  # it covers LS6
    assert task["status"] == "requested"  # on the triage list, for a person to act on


def test_an_email_only_site_goes_on_the_to_contact_list(hub: Hub) -> None:
    site = row("email-only", referral_email="referrals@site.example", referral_phone="0113 496 0000")
    del site["bars_endpoint"]
    load(hub.db, [site])
    data, _ = referral_message("knee-gp")
    assert hub.post(data).status_code == 200
    assert hub.messages() == []
    listing = hub.client.get("/CommunicationRequest", params={"status": "active"}).json()
    (entry,) = listing["entry"]
    request = entry["resource"]
    assert request["recipient"][0]["reference"] == "HealthcareService/site-email-only"
    assert request["medium"][0]["coding"][0]["code"] == "EMAILWRIT"
    assert "by email at referrals@site.example" in request["payload"][0]["contentString"]
    assert "ESCAPE-000001" in request["payload"][0]["contentString"]
    assert request["about"][0]["reference"].startswith("ServiceRequest/")
    assert hub.client.get("/CommunicationRequest", params={"status": "completed"}).json()["total"] == 0


def _contact_entry(hub: Hub) -> tuple[Json, str]:
    site = row("email-only", referral_email="referrals@site.example")
    del site["bars_endpoint"]
    load(hub.db, [site])
    data, _ = referral_message("knee-gp")
    assert hub.post(data).status_code == 200
    (entry,) = hub.client.get("/CommunicationRequest", params={"status": "active"}).json()["entry"]
    request = entry["resource"]
    return request, hub.client.get(f"/CommunicationRequest/{request['id']}").headers["ETag"]


def _total(hub: Hub, status: str) -> int:
    return int(hub.client.get("/CommunicationRequest", params={"status": status}).json()["total"])


def test_staff_mark_a_to_contact_entry_done(hub: Hub) -> None:
    request, etag = _contact_entry(hub)
    url = f"/CommunicationRequest/{request['id']}"
    done = {**request, "status": "completed", "note": [{"text": "phoned the site, referral sent by email"}]}
    missing = hub.client.put(url, json=done)
    assert missing.status_code == 428 and missing.headers["ETag"] == etag  # how to retry, as for a Task
    changed = {**done, "payload": [{"contentString": "something else"}]}
    refused = hub.client.put(url, json=changed, headers={"If-Match": etag})
    assert refused.status_code == 422
    assert "not payload" in refused.json()["issue"][0]["diagnostics"]
    made = hub.client.put(url, json=done, headers={"If-Match": etag})
    assert made.status_code == 200, made.text
    assert made.json()["status"] == "completed" and made.headers["ETag"] == 'W/"2"'
    assert (_total(hub, "active"), _total(hub, "completed"), _total(hub, "revoked")) == (0, 1, 0)
    stale = hub.client.put(url, json={**done, "status": "active"}, headers={"If-Match": etag})
    assert stale.status_code == 412  # someone else changed it first
    again = hub.client.put(url, json={**done, "status": "active"}, headers={"If-Match": 'W/"2"'})
    assert again.status_code == 422 and "completed cannot become active" in again.json()["issue"][0]["diagnostics"]
    assert _total(hub, "completed") == 1


def test_a_to_contact_entry_revoked_in_a_transaction_needs_a_reason_and_is_never_deleted(hub: Hub) -> None:
    request, etag = _contact_entry(hub)
    url = f"CommunicationRequest/{request['id']}"

    def transaction(entry: Json) -> Any:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        return hub.client.post("/", json=bundle)

    revoked = {**request, "status": "revoked"}
    full_url = f"http://testserver/{url}"
    put = {"fullUrl": full_url, "resource": revoked, "request": {"method": "PUT", "url": url, "ifMatch": etag}}
    no_reason = transaction(put)
    assert no_reason.status_code == 422, no_reason.text
    assert "statusReason" in no_reason.text
    assert transaction({"request": {"method": "DELETE", "url": url}}).status_code == 422
    no_version = transaction({**put, "request": {"method": "PUT", "url": url}})
    assert no_version.status_code == 428
    revoked["statusReason"] = {"text": "the site now takes BaRS messages"}
    assert transaction({**put, "resource": revoked}).status_code == 200
    assert (_total(hub, "active"), _total(hub, "revoked")) == (0, 1)
    other = hub.client.put(
        "/CommunicationRequest/not-on-the-list",
        json={**revoked, "id": "not-on-the-list"},
        headers={"If-Match": 'W/"1"'},
    )
    assert other.status_code == 404


def test_triage_re_routes_to_another_site(hub: Hub, receiver: Callable[..., ServerOn]) -> None:  # noqa: F811
    first, second = receiver(), receiver()
    load(
        hub.db,
        [
            row("a-sector", covers="LS6 2", bars_endpoint=first.url),
            row("b-district", covers="LS6", bars_endpoint=second.url),
        ],
    )
    data, identifier = referral_message("knee-gp")
    assert hub.post(data).status_code == 200
    task = hub.task()
    assert inputs(task, sc.ROUTED_SITE) == ["HealthcareService/site-a-sector"]  # sector before district
    hub.deliver()  # the first site has it before triage re-routes
    body = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "no class for 3 months"}]}
    headers = {"Content-Type": "application/fhir+json", "If-Match": f'W/"{task["meta"]["versionId"]}"'}
    answer = hub.client.post(f"/Task/{task['id']}/$route", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert inputs(moved, sc.ROUTED_SITE) == ["HealthcareService/site-b-district"]
    assert inputs(moved, sc.ROUTING_REASON)[0] == "re-routed by triage: no class for 3 months"
    assert moved["note"][-1]["text"] == (
        "re-routed from a-sector to b-district: no class for 3 months; "
        "a-sector may already have the referral (delivered): a cancellation is sent to it"
    )
    stale = hub.client.post(f"/Task/{task['id']}/$route", json=body, headers=headers)
    assert stale.status_code == 412  # the Task moved on: If-Match names an old version
    hub.deliver()
    assert [(m.destination, m.state) for m in hub.messages()] == [
        (first.url, "delivered"),
        (first.url, "delivered"),  # the BaRS cancellation, queued after the referral it cancels
        (second.url, "delivered"),
    ]
    assert first.count(identifier) == 1 and second.count(identifier) == 1
    # The first site withdrew it: its ServiceRequest revoked, its triage Task cancelled with the reason.
    (sr,) = [e["resource"] for e in httpx.get(f"{first.url}/ServiceRequest", timeout=10).json()["entry"]]
    assert sr["status"] == "revoked"
    (their_task,) = [e["resource"] for e in httpx.get(f"{first.url}/Task", timeout=10).json()["entry"]]
    assert their_task["status"] == "cancelled"
    (still,) = [e["resource"] for e in httpx.get(f"{second.url}/Task", timeout=10).json()["entry"]]
    assert still["status"] == "requested"
    with hub.db.read() as repo:
        assert [(r.sequence, r.site_id) for r in routes_of(repo, 1)] == [(1, "a-sector"), (2, "b-district")]
    # Back to the first site: refused when named (its system has the referral, cancelled), and never chosen.
    headers["If-Match"] = f'W/"{moved["meta"]["versionId"]}"'
    back = [{"name": "reason", "valueString": "back to the first"}, {"name": "site", "valueString": "a-sector"}]
    refused = hub.client.post(
        f"/Task/{task['id']}/$route", json={"resourceType": "Parameters", "parameter": back}, headers=headers
    )
    assert refused.status_code == 422 and "cancelled there" in refused.text
    next_best = hub.client.post(f"/Task/{task['id']}/$route", json=body, headers=headers)
    assert next_best.status_code == 422 and "no other site takes this referral" in next_best.text
    assert len(hub.messages()) == 3  # nothing more sent


def test_a_re_route_revokes_an_open_to_contact_entry_and_asks_staff_to_tell_a_contacted_site(hub: Hub) -> None:
    email_only = row("email-only", covers="LS6 2", referral_email="referrals@site.example")
    del email_only["bars_endpoint"]
    other = row("other", covers="LS6", referral_phone="0113 496 0000")
    del other["bars_endpoint"]
    load(hub.db, [email_only, other])
    data, _ = referral_message("knee-gp")
    assert hub.post(data).status_code == 200
    task = hub.task()
    body = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "nearer home"}]}
    headers = {"If-Match": f'W/"{task["meta"]["versionId"]}"'}
    moved = hub.client.post(f"/Task/{task['id']}/$route", json=body, headers=headers).json()
    assert moved["note"][-1]["text"].endswith("the to-contact entry for email-only is revoked (not yet contacted)")
    (revoked,) = hub.client.get("/CommunicationRequest", params={"status": "revoked"}).json()["entry"]
    assert "re-routed to another ESCAPE-pain site" in revoked["resource"]["statusReason"]["text"]
    (open_entry,) = hub.client.get("/CommunicationRequest", params={"status": "active"}).json()["entry"]
    request = open_entry["resource"]
    assert request["recipient"][0]["reference"] == "HealthcareService/site-other"
    etag = hub.client.get(f"/CommunicationRequest/{request['id']}").headers["ETag"]
    done = {**request, "status": "completed"}
    assert hub.client.put(f"/CommunicationRequest/{request['id']}", json=done, headers={"If-Match": etag}).is_success
    # Now re-routed back: "other" was contacted, so staff are asked, urgently, to tell it.
    headers = {"If-Match": f'W/"{moved["meta"]["versionId"]}"'}
    back = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueString": "patient moved"},
            {"name": "site", "valueString": "email-only"},
        ],
    }
    moved = hub.client.post(f"/Task/{task['id']}/$route", json=back, headers=headers).json()
    assert "other was contacted: CommunicationRequest/" in moved["note"][-1]["text"]
    active = [
        e["resource"] for e in hub.client.get("/CommunicationRequest", params={"status": "active"}).json()["entry"]
    ]
    tell = [r for r in active if r["priority"] == "urgent"]
    (told,) = tell
    assert told["recipient"][0]["reference"] == "HealthcareService/site-other"
    assert (
        "is withdrawn" in told["payload"][0]["contentString"]
        and "telephone at 0113 496 0000" in told["payload"][0]["contentString"]
    )


def test_a_re_route_before_sending_withdraws_the_first_message(hub: Hub, receiver: Callable[..., ServerOn]) -> None:  # noqa: F811
    first, second = receiver(), receiver()
    load(hub.db, [row("a", covers="LS6 2", bars_endpoint=first.url), row("b", covers="LS6", bars_endpoint=second.url)])
    data, identifier = referral_message("knee-gp")
    hub.post(data)
    task = hub.task()
    body = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "closer to work"}]}
    headers = {"Content-Type": "application/fhir+json", "If-Match": f'W/"{task["meta"]["versionId"]}"'}
    moved = hub.client.post(f"/Task/{task['id']}/$route", json=body, headers=headers).json()
    assert moved["note"][-1]["text"].endswith("the message to a was not yet sent and is withdrawn")
    hub.deliver()
    assert [(m.destination, m.state) for m in hub.messages()] == [(first.url, "dead"), (second.url, "delivered")]
    assert hub.messages()[0].last_error == "withdrawn: re-routed to b"
    assert first.count() == 0 and second.count(identifier) == 1


def test_re_routing_needs_a_reason_and_a_known_site(hub: Hub) -> None:
    load(hub.db, [row("only")])
    data, _ = referral_message("knee-gp")
    hub.post(data)
    task = hub.task()
    headers = {"Content-Type": "application/fhir+json", "If-Match": f'W/"{task["meta"]["versionId"]}"'}
    no_reason = {"resourceType": "Parameters", "parameter": [{"name": "site", "valueString": "only"}]}
    assert hub.client.post(f"/Task/{task['id']}/$route", json=no_reason, headers=headers).status_code == 400
    unknown = {
        "resourceType": "Parameters",
        "parameter": [{"name": "site", "valueString": "nowhere"}, {"name": "reason", "valueString": "moved"}],
    }
    refused = hub.client.post(f"/Task/{task['id']}/$route", json=unknown, headers=headers)
    assert refused.status_code == 422 and "no active site 'nowhere'" in refused.text
    alone = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "moved"}]}
    refused = hub.client.post(f"/Task/{task['id']}/$route", json=alone, headers=headers)
    assert refused.status_code == 422 and "no other site takes this referral" in refused.text


def test_completing_the_task_tells_the_referrer_the_signposting(hub: Hub) -> None:
    load(hub.db, [row("gym", signposting="Leisure centre gym: 10 supported sessions;Walking group")])
    data, _ = referral_message("knee-gp")
    hub.post(data)
    for status in ("accepted", "completed"):
        task = hub.task()
        headers = {"Content-Type": "application/fhir+json", "If-Match": f'W/"{task["meta"]["versionId"]}"'}
        assert (
            hub.client.put(f"/Task/{task['id']}", json={**task, "status": status}, headers=headers).status_code == 200
        )
    responses = [m for m in hub.messages() if m.kind == "response"]
    completed = parse(_body(hub, responses[-1].id))
    (mirror,) = [e["resource"] for e in completed["entry"] if e["resource"]["resourceType"] == "Task"]
    outputs = [(o["type"]["coding"][0]["code"], o["valueString"]) for o in mirror["output"]]
    assert outputs[:2] == [
        ("signposting", "Leisure centre gym: 10 supported sessions"),
        ("signposting", "Walking group"),
    ]
    assert outputs[2][0] == "participant-summary" and "Walking group" in outputs[2][1]
    accepted = parse(_body(hub, responses[0].id))
    assert all("output" not in e["resource"] for e in accepted["entry"])  # only at discharge


def test_a_hub_off_server_routes_nothing(make_client: MakeClient, tmp_path: Path) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'plain.sqlite3'}"
    client = make_client(database_url=url)
    db = Database.from_url(url)
    load(db, [row("leeds")])
    data, _ = referral_message("knee-gp")
    assert client.post("/$process-message", content=data, headers=message_headers(str(uuid.uuid4()))).status_code == 200
    with db.read() as repo:
        assert Outbox(repo.session).listing() == [] and routes_of(repo, 1) == []
    db.dispose()


def test_a_site_server_signposts_by_its_own_ods_code(make_client: MakeClient, tmp_path: Path) -> None:  # noqa: F811
    """Not a hub: the receiving site itself (the Task's owner, ODS RR8 in knee-gp) finds its signposting in the
    directory by ODS code and programme."""
    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    site = Hub(make_client(database_url=url), url)
    load(
        site.db,
        [
            row("rr8-knee", ods_code="RR8", signposting="Pool: aqua classes"),
            row("rr8-back", ods_code="RR8", programme="back"),
        ],
    )
    data, _ = referral_message("knee-gp")
    site.post(data)
    for status in ("accepted", "completed"):
        task = site.task()
        headers = {"Content-Type": "application/fhir+json", "If-Match": f'W/"{task["meta"]["versionId"]}"'}
        assert (
            site.client.put(f"/Task/{task['id']}", json={**task, "status": status}, headers=headers).status_code == 200
        )
    last = [m for m in site.messages() if m.kind == "response"][-1]
    (mirror,) = [e["resource"] for e in parse(_body(site, last.id))["entry"] if e["resource"]["resourceType"] == "Task"]
    assert mirror["output"][0]["valueString"] == "Pool: aqua classes"
    site.db.dispose()
