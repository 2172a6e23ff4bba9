"""Every write path with every scope (issue 10 item 1): one table of path x token -> expected status, tried on
the real app with bearer tokens configured. Each cell gets a referral of its own (a message posted with the
``all`` token), and a refused request must leave that referral's ServiceRequest and Task as they were."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from escape_fhir.api import create_app
from escape_fhir.service import permissions
from escape_fhir.service.outbound import enqueue_referral
from escape_fhir.service.permissions import Action
from escape_fhir.service.responses import response_bundle
from escape_fhir.settings import Scope, Settings
from escape_fhir.storage.outbox import Origin
from tests.api.conftest import example, message_headers

Json = dict[str, Any]
SCOPE_SETS = {
    "submit": ["submit"],
    "read": ["read"],
    "triage": ["triage"],
    "validate": ["validate"],
    "submit+read": ["submit", "read"],
    "triage+read": ["triage", "read"],
    "all": ["submit", "triage", "read", "validate"],
}
TOKENS = {name: f"{name.replace('+', '-')}-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}" for name in SCOPE_SETS}
MRN = "https://trust.example.nhs.uk/Id/mrn"

# path x token -> status. "none": no Authorization header; "bad": a token that is not configured.
# Reading the rows: writes need submit, triage needs triage, GET entries need read, and what nobody may do
# (create or delete a Task, change a referral's ServiceRequest, Encounter or Patient behind triage) is 422
# for every authenticated caller who could otherwise write that type. There is no other way in: REST create,
# update (but PUT /Task) and delete are not routes at all (405 before any token is looked at).
TABLE = """
case                         none bad submit read triage validate submit+read triage+read all
message-new                  401  401 200    403  403    403      200         403         200
message-withdraw             401  401 200    403  403    403      200         403         200
triage-put-task              401  401 403    403  200    403      403         200         200
triage-put-task-no-if-match  401  401 403    403  428    403      403         428         428
txn-create-referral          401  401 200    403  403    403      200         403         200
txn-conditional-put-patient  401  401 200    403  403    403      200         403         200
txn-delete-referral-sr       401  401 422    403  403    403      422         403         422
txn-put-referral-sr          401  401 422    403  403    403      422         403         422
txn-put-task-no-if-match     401  401 403    403  428    403      403         428         428
txn-put-task-if-match        401  401 403    403  200    403      403         200         200
txn-put-task-not-allowed     401  401 403    403  422    403      403         422         422
txn-post-task                401  401 422    422  422    422      422         422         422
txn-delete-task              401  401 422    422  422    422      422         422         422
txn-delete-referral-encounter 401 401 422    403  403    403      422         403         422
txn-delete-referral-patient  401  401 422    403  403    403      422         403         422
txn-get-service-request      401  401 403    200  403    403      200         200         200
read-service-request         401  401 403    200  403    403      200         200         200
validate                     401  401 403    403  403    200      403         403         200
rest-post-task               405  405 405    405  405    405      405         405         405
rest-put-service-request     405  405 405    405  405    405      405         405         405
rest-delete-service-request  405  405 405    405  405    405      405         405         405
"""
COLUMNS = TABLE.split("\n")[1].split()[1:]
ROWS = {
    line.split()[0]: dict(zip(COLUMNS, map(int, line.split()[1:]), strict=True))
    for line in TABLE.strip().split("\n")[1:]
}


@dataclass
class Referral:
    message: Json
    sr: str
    task: str
    patient: str
    encounter: str


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("permissions")
    tokens = {TOKENS[name]: scopes for name, scopes in SCOPE_SETS.items()}
    settings = Settings(database_url=f"sqlite:///{folder / 'db.sqlite3'}", tokens=tokens)
    with TestClient(create_app(settings)) as client:
        yield client


def auth(who: str) -> dict[str, str]:
    if who == "none":
        return {}
    return {"Authorization": f"Bearer {TOKENS.get(who, 'b' * 12 + '-not-configured-0123456789')}"}


ALL = auth("all")


def fresh_message(reason: str = "new") -> Json:
    """knee-gp with a Bundle id and referral identifier of its own (a new referral each time)."""
    message = json.loads(example("knee-gp"))
    message["id"] = str(uuid.uuid4())
    message["entry"][0]["resource"]["reason"]["coding"][0]["code"] = reason
    message["entry"][1]["resource"]["identifier"][0]["value"] = str(uuid.uuid4())
    # A hospital number of its own: intake stores a Patient per referral, so the NHS number names several.
    message["entry"][2]["resource"]["identifier"].append({"system": MRN, "value": str(uuid.uuid4())})
    return message


def post_message(client: TestClient, message: Json, headers: dict[str, str]) -> httpx.Response:
    return client.post("/$process-message", content=json.dumps(message), headers={**message_headers(), **headers})


def seed(client: TestClient) -> Referral:
    message = fresh_message()
    ack = post_message(client, message, ALL)
    assert ack.status_code == 200, ack.text
    ours = {e["resource"]["resourceType"]: e["resource"]["id"] for e in ack.json()["entry"]}
    (task,) = client.get("/Task", params={"focus": f"ServiceRequest/{ours['ServiceRequest']}"}, headers=ALL).json()[
        "entry"
    ]
    return Referral(message, ours["ServiceRequest"], task["resource"]["id"], ours["Patient"], ours["Encounter"])


def transaction(*entries: Json) -> Json:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def read(client: TestClient, path: str) -> Json:
    r = client.get(path, headers=ALL)
    assert r.status_code == 200, r.text
    found: Json = r.json()
    return found


def task_change(client: TestClient, ref: Referral, status: str) -> Json:
    task = read(client, f"/Task/{ref.task}")
    task["status"] = status
    if status == "rejected":
        task["statusReason"] = {"text": "not suitable"}
    return task


# --- the paths -------------------------------------------------------------------------------------------
Path_ = Callable[[TestClient, Referral, dict[str, str]], httpx.Response]


def message_new(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return post_message(c, fresh_message(), h)


def message_withdraw(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    withdrawal = copy.deepcopy(ref.message)
    withdrawal["id"] = str(uuid.uuid4())
    withdrawal["entry"][0]["resource"]["reason"]["coding"][0]["code"] = "delete"
    return post_message(c, withdrawal, h)


def triage_put_task(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return c.put(f"/Task/{ref.task}", json=task_change(c, ref, "accepted"), headers={**h, "If-Match": 'W/"1"'})


def triage_put_task_no_if_match(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return c.put(f"/Task/{ref.task}", json=task_change(c, ref, "rejected"), headers=h)


def txn(c: TestClient, h: dict[str, str], *entries: Json) -> httpx.Response:
    """POST / of the entries, each with a resource given a fullUrl (the URL it will have, or a new urn:uuid)."""
    for e in entries:
        url = e["request"]["url"]
        if "resource" in e and "fullUrl" not in e:
            e["fullUrl"] = f"http://testserver/{url}" if "/" in url else f"urn:uuid:{uuid.uuid4()}"
    return c.post("/", json=transaction(*entries), headers=h)


def txn_create_referral(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    message = fresh_message()
    entries = [
        {
            "fullUrl": e["fullUrl"],
            "resource": e["resource"],
            "request": {"method": "POST", "url": e["resource"]["resourceType"]},
        }
        for e in message["entry"][1:]
    ]
    return txn(c, h, *entries)


def txn_conditional_put_patient(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    patient = {k: v for k, v in read(c, f"/Patient/{ref.patient}").items() if k not in ("id", "meta")}
    patient["telecom"] = [{"system": "phone", "value": "01632 960000", "use": "mobile"}]
    url = f"Patient?identifier={MRN}|{patient['identifier'][-1]['value']}"
    return txn(
        c,
        h,
        {"fullUrl": "urn:uuid:" + str(uuid.uuid4()), "resource": patient, "request": {"method": "PUT", "url": url}},
    )


def txn_delete_referral_sr(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return txn(c, h, {"request": {"method": "DELETE", "url": f"ServiceRequest/{ref.sr}"}})


def txn_put_referral_sr(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    sr = {**read(c, f"/ServiceRequest/{ref.sr}"), "status": "revoked"}
    return txn(c, h, {"resource": sr, "request": {"method": "PUT", "url": f"ServiceRequest/{ref.sr}"}})


def _txn_task(c: TestClient, ref: Referral, h: dict[str, str], status: str, if_match: str | None) -> httpx.Response:
    request = {"method": "PUT", "url": f"Task/{ref.task}", **({"ifMatch": if_match} if if_match else {})}
    return txn(c, h, {"resource": task_change(c, ref, status), "request": request})


def txn_put_task_no_if_match(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return _txn_task(c, ref, h, "rejected", None)


def txn_put_task_if_match(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return _txn_task(c, ref, h, "accepted", 'W/"1"')


def txn_put_task_not_allowed(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return _txn_task(c, ref, h, "completed", 'W/"1"')  # requested -> completed skips triage's decision


def txn_post_task(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    task = {k: v for k, v in read(c, f"/Task/{ref.task}").items() if k not in ("id", "meta")}
    return txn(c, h, {"resource": {**task, "status": "completed"}, "request": {"method": "POST", "url": "Task"}})


def txn_delete_task(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return txn(c, h, {"request": {"method": "DELETE", "url": f"Task/{ref.task}"}})


def txn_delete_referral_encounter(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return txn(c, h, {"request": {"method": "DELETE", "url": f"Encounter/{ref.encounter}"}})


def txn_delete_referral_patient(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return txn(c, h, {"request": {"method": "DELETE", "url": f"Patient/{ref.patient}"}})


def txn_get_service_request(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return txn(c, h, {"request": {"method": "GET", "url": f"ServiceRequest/{ref.sr}"}})


def read_service_request(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return c.get(f"/ServiceRequest/{ref.sr}", headers=h)


def validate(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return c.post("/$validate", content=example("knee-gp"), headers={**h, "Content-Type": "application/fhir+json"})


def rest_post_task(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return c.post("/Task", json=read(c, f"/Task/{ref.task}"), headers=h)


def rest_put_service_request(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    sr = {**read(c, f"/ServiceRequest/{ref.sr}"), "status": "revoked"}
    return c.put(f"/ServiceRequest/{ref.sr}", json=sr, headers={**h, "If-Match": 'W/"1"'})


def rest_delete_service_request(c: TestClient, ref: Referral, h: dict[str, str]) -> httpx.Response:
    return c.delete(f"/ServiceRequest/{ref.sr}", headers=h)


PATHS: dict[str, Path_] = {name: globals()[name.replace("-", "_")] for name in ROWS}


def test_the_table_names_every_path_and_every_token() -> None:
    assert set(PATHS) == set(ROWS) and ["none", "bad", *SCOPE_SETS] == COLUMNS


def versions(client: TestClient, ref: Referral) -> tuple[str, str, str]:
    sr, task = client.get(f"/ServiceRequest/{ref.sr}", headers=ALL), client.get(f"/Task/{ref.task}", headers=ALL)
    return sr.headers.get("etag", str(sr.status_code)), task.headers["etag"], task.json()["status"]


@pytest.mark.parametrize(("case", "who"), [pytest.param(c, w, id=f"{c}-{w}") for c in ROWS for w in COLUMNS])
def test_every_write_path_with_every_token(app: TestClient, case: str, who: str) -> None:
    ref = seed(app)
    before = versions(app, ref)
    r = PATHS[case](app, ref, auth(who))
    assert r.status_code == ROWS[case][who], r.text
    body = r.json()
    if r.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
        assert versions(app, ref) == before, "a refused request changed the referral"
    if r.status_code == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_the_submit_token_of_issue_10_cannot_withdraw_or_triage_behind_triage(app: TestClient) -> None:
    """The reported hole, end to end: a submit+read token's transaction that deletes the ServiceRequest and
    rejects the Task without ifMatch is refused as a whole, and the referral stays on the triage list."""
    ref = seed(app)
    h = auth("submit+read")
    rejected = task_change(app, ref, "rejected")
    r = txn(
        app,
        h,
        {"request": {"method": "DELETE", "url": f"ServiceRequest/{ref.sr}"}},
        {"resource": rejected, "request": {"method": "PUT", "url": f"Task/{ref.task}"}},
    )
    assert r.status_code == 403 and r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
    r = txn(app, h, {"request": {"method": "DELETE", "url": f"ServiceRequest/{ref.sr}"}})
    issue = r.json()["issue"][0]
    assert (r.status_code, issue["code"], issue["expression"]) == (422, "business-rule", ["Bundle.entry[0]"])
    assert "message with reason update or delete" in issue["diagnostics"]
    listed = read(app, f"/Task?status=requested&focus=ServiceRequest/{ref.sr}")["entry"]
    assert [e["resource"]["id"] for e in listed] == [ref.task]
    assert read(app, f"/ServiceRequest/{ref.sr}")["status"] == "active"


def test_a_task_changed_in_a_transaction_goes_through_triage(app: TestClient) -> None:
    """The same state machine as PUT /Task: the ServiceRequest follows, a stale ifMatch is 412."""
    ref = seed(app)
    h = auth("triage+read")
    assert _txn_task(app, ref, h, "accepted", 'W/"1"').status_code == 200
    stale = _txn_task(app, ref, h, "completed", 'W/"1"')
    assert stale.status_code == 412 and stale.json()["issue"][0]["expression"] == ["Bundle.entry[0].request.ifMatch"]
    r = _txn_task(app, ref, h, "completed", 'W/"2"')
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["response"]["etag"] == 'W/"3"'
    assert read(app, f"/ServiceRequest/{ref.sr}")["status"] == "completed"
    changed = task_change(app, ref, "completed")
    changed["description"] = "something else"
    r = txn(app, h, {"resource": changed, "request": {"method": "PUT", "url": f"Task/{ref.task}", "ifMatch": 'W/"3"'}})
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.description"]


def test_the_table_of_rules_answers_each_action() -> None:
    every = frozenset(Scope)
    assert all(permissions.rule(action, "AnyOtherType") for action in Action)  # every action has a default row
    assert permissions.allow(every, Action.UPDATE, "Task").triage
    assert permissions.rule(Action.UPDATE, "Patient").scope is Scope.SUBMIT
    with pytest.raises(permissions.OutcomeError) as refused:
        permissions.allow(every, Action.CREATE, "Task", "Bundle.entry[3]")
    assert refused.value.status == 422 and refused.value.issues[0].location == "Bundle.entry[3]"
    with pytest.raises(permissions.OutcomeError) as forbidden:
        permissions.allow(frozenset({Scope.SUBMIT}), Action.READ, "ServiceRequest")
    assert forbidden.value.status == 403 and "read scope" in forbidden.value.issues[0].message


def test_an_open_server_lets_every_caller_do_what_any_scope_allows(client: TestClient) -> None:
    """No tokens (loopback only): every scope, and still the state rules (the Authorization sent is ignored)."""
    ref = seed(client)
    assert _txn_task(client, ref, {}, "accepted", 'W/"1"').status_code == 200
    assert txn_delete_referral_sr(client, ref, {}).status_code == 422


def test_a_message_cannot_carry_a_task_of_its_own(app: TestClient) -> None:
    """A referral message stores what it carries: a Task in it would stand beside the triage Task (or, with
    status completed, look decided), so it is refused like POST Task."""
    message = fresh_message()
    sr_url, patient_url = message["entry"][1]["fullUrl"], message["entry"][2]["fullUrl"]
    task = {"resourceType": "Task", "meta": {"lastUpdated": "2026-11-20T09:30:00Z"}, "status": "completed"}
    task |= {"intent": "order", "focus": {"reference": sr_url}, "for": {"reference": patient_url}}
    message["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": task})
    r = post_message(app, message, auth("submit"))
    issue = r.json()["issue"][0]
    at = f"Bundle.entry[{len(message['entry']) - 1}].resource"
    assert (r.status_code, issue["code"], issue["expression"]) == (422, "business-rule", [at])
    identifier = message["entry"][1]["resource"]["identifier"][0]
    found = read(app, f"/ServiceRequest?identifier={identifier['system']}|{identifier['value']}")
    assert found["total"] == 0


def test_a_response_message_cannot_rewrite_a_triage_task(app: TestClient) -> None:
    """A response to a referral we sent mirrors the receiver's Task under its id; a forged one naming the id of
    one of our triage Tasks (and a lastModified in the future, so it is not stale) is refused."""
    ref = seed(app)
    sent = fresh_message()
    queued = enqueue_referral(app.app.state.db, json.dumps(sent).encode(), "http://127.0.0.1:9/never")  # type: ignore[attr-defined]
    origin = Origin(
        1, queued.bundle_id, queued.correlation_id, "https://fhir.nhs.uk/Id/ods-organization-code|RR8", None
    )
    sr = {"id": queued.service_request_id, "status": "revoked", "intent": "plan", "subject": {"reference": "Patient/p"}}
    forged = {"id": ref.task, "status": "completed", "intent": "order", "lastModified": "2999-01-01T00:00:00Z"}
    r = post_message(app, response_bundle(origin, sr, forged, "2026-11-26T12:00:00.000Z"), auth("submit"))
    issue = r.json()["issue"][0]
    assert (r.status_code, issue["code"], issue["expression"]) == (
        422,
        "business-rule",
        ["Bundle.entry[2].resource.id"],
    )
    assert read(app, f"/Task/{ref.task}")["status"] == "requested"
    assert read(app, f"/ServiceRequest/{queued.service_request_id}")["status"] == "active"
    mirror = {**forged, "id": str(uuid.uuid4())}  # the receiver's own Task: kept as our mirror
    r = post_message(app, response_bundle(origin, sr, mirror, "2026-11-26T12:00:00.000Z"), auth("submit"))
    assert r.status_code == 200, r.text
    assert read(app, f"/Task/{mirror['id']}")["focus"]["reference"] == f"ServiceRequest/{queued.service_request_id}"
