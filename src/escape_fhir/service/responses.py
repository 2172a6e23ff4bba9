"""Asynchronous responses (BaRS, nhs-standards.md 1.7): the receiver tells the sender its triage outcome.

Receiver side. At intake we keep the origin of each new referral (1.4 receiver step 2: store
``source.endpoint``; with it the Bundle id and X-Correlation-ID). When triage moves the Task to accepted,
in-progress, rejected or completed, a ``servicerequest-response`` message is queued in the outbox in the same
transaction (:func:`enqueue_triage_response`): MessageHeader event ``servicerequest-response`` of
``message-events-bars``, ``response.identifier`` the original request Bundle id and ``response.code`` ``ok``
(FHIR messaging.html, MessageHeader.response), addressed to the stored ``source.endpoint``, with the original
X-Correlation-ID and a new X-Request-ID; focus the ServiceRequest with its new status, beside the Task that
carries the status and the reason of a rejection (``statusReason``).

Sender side. ``$process-message`` takes a ``servicerequest-response`` (:func:`read_response`,
:func:`apply_response`): it finds the referral we sent by ``response.identifier`` (unknown: 422), updates our
copy of the ServiceRequest, keeps the receiver's Task as a mirror (``GET /Task?focus=ServiceRequest/{id}``)
and records the status on the outbox row. A response older than the mirror (``Task.lastModified``) changes
nothing, so responses delivered out of order never move a referral back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from escape_fhir import __version__
from escape_fhir.errors import FhirFormatError, Issue
from escape_fhir.fhir import codes, jsonio
from escape_fhir.fhir.formats import parse
from escape_fhir.service import permissions
from escape_fhir.service.common import new_id
from escape_fhir.service.messages import Message, read_message
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.sites.signposting import with_signposting
from escape_fhir.storage import Repository, instant
from escape_fhir.storage.outbox import REQUEST, RESPONSE, NewMessage, Origin, Outbox

Json = dict[str, Any]

EVENT = "servicerequest-response"
#: Task statuses the sender is told about (triage decisions and the end of the programme).
ANNOUNCED = frozenset({"accepted", "in-progress", "rejected", "completed"})
HEADER = "Bundle.entry[0].resource"


def is_response(bundle: Json) -> bool:
    """A message Bundle whose MessageHeader's event is ``servicerequest-response``."""
    entries = bundle.get("entry")
    first: Any = entries[0] if isinstance(entries, list) and entries else {}
    header = _object(_object(first).get("resource"))
    event = _object(header.get("eventCoding"))
    return event.get("system") == codes.CS_MESSAGE_EVENTS_BARS and event.get("code") == EVENT


def _object(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


# --- receiver side ----------------------------------------------------------------------------------
def remember_origin(repo: Repository, message: Message, correlation_id: str, number: int) -> None:
    """Keep where the responses to a new referral go; a message without ``source.endpoint`` gets none."""
    header = message.resource(0)
    source = (header.get("source") or {}).get("endpoint")
    if message.reason != "new" or not isinstance(source, str) or not source:
        return
    own = next((d.get("endpoint") for d in header.get("destination") or [] if isinstance(d, dict)), None)
    origin = Origin(number, message.bundle_id, correlation_id, source, own if isinstance(own, str) else None)
    Outbox(repo.session).add_origin(origin)


def enqueue_triage_response(repo: Repository, before: Json, task: Json, now: datetime) -> int | None:
    """Queue the response to a triage decision (same transaction); None when nothing is to be told."""
    status = task.get("status")
    if status == before.get("status") or status not in ANNOUNCED:
        return None
    outbox = Outbox(repo.session)
    origin = outbox.origin_of_task(str(task["id"]))
    _, _, sr_id = str((task.get("focus") or {}).get("reference", "")).partition("/")
    sr = repo.current("ServiceRequest", sr_id)
    if origin is None or sr is None:
        return None
    _, _, patient_id = str((sr.content.get("subject") or {}).get("reference", "")).partition("/")
    patient = repo.current("Patient", patient_id) if patient_id else None
    bundle = response_bundle(
        origin, sr.content, task, instant(now), _request(repo, origin), patient.content if patient else None
    )
    bundle = with_signposting(repo, bundle, task)
    body = jsonio.dumps(bundle)
    queued = NewMessage(RESPONSE, origin.source_endpoint, bundle["id"], new_id(), origin.correlation_id, body, "json")
    return outbox.add(queued, now)


def _request(repo: Repository, origin: Origin) -> Json | None:
    """The referral message the response answers, as it was received (the message log keeps it)."""
    logged = repo.logged_message(origin.bundle_id)
    if logged is None:
        return None
    try:
        return parse(logged.original, logged.original_format)
    except FhirFormatError:
        return None


def response_bundle(
    origin: Origin, sr: Json, task: Json, stamp: str, request: Json | None = None, patient: Json | None = None
) -> Json:
    """The ``servicerequest-response`` message (BaRS profile BARSMessageHeader-servicerequest-response):
    MessageHeader, the ServiceRequest (focus), the Task, the Patient, and two Organizations: the sender (us,
    the request's receiver) and the receiver (the request's sender), which ``sender`` and
    ``destination.receiver`` reference. ``meta.versionId`` is the BaRS application version."""
    meta = {"lastUpdated": stamp}
    us, them = _parties(origin, task, request)
    header: Json = {
        "resourceType": "MessageHeader",
        "id": new_id(),
        "meta": meta,
        "eventCoding": {"system": codes.CS_MESSAGE_EVENTS_BARS, "code": EVENT},
        "destination": [{"endpoint": origin.source_endpoint, "receiver": {"reference": f"urn:uuid:{them['id']}"}}],
        "sender": {"reference": f"urn:uuid:{us['id']}"},
        "source": {"name": "escape-fhir", "software": "escape-fhir", "version": __version__},
        "reason": {"coding": [{"system": codes.CS_MESSAGE_REASON_BARS, "code": "new"}]},
        "response": {"identifier": origin.bundle_id, "code": "ok"},
        "focus": [{"reference": f"urn:uuid:{sr['id']}"}],
    }
    header["source"]["endpoint"] = origin.own_endpoint or f"urn:uuid:{header['id']}"
    kept_sr = ("identifier", "status", "intent", "category", "code", "authoredOn")
    request_copy = {"resourceType": "ServiceRequest", "id": sr["id"], "meta": meta}
    request_copy.update({k: sr[k] for k in kept_sr if k in sr})
    entries = [header, request_copy]
    if patient is not None and isinstance(patient.get("id"), str):
        kept_patient = ("identifier", "name", "gender", "birthDate")
        copied = {"resourceType": "Patient", "id": patient["id"], "meta": {**meta, **_profile_of(patient)}}
        copied.update({k: patient[k] for k in kept_patient if k in patient})
        request_copy["subject"] = {"reference": f"urn:uuid:{patient['id']}"}
        entries.append(copied)
    elif "subject" in sr:
        request_copy["subject"] = sr["subject"]
    kept_task = ("identifier", "status", "statusReason", "businessStatus", "intent", "code", "lastModified")
    mirror = {"resourceType": "Task", "id": task["id"], "meta": meta}
    mirror.update({k: task[k] for k in kept_task if k in task})
    mirror["focus"] = {"reference": f"urn:uuid:{sr['id']}"}
    owner = {k: v for k, v in _object(task.get("owner")).items() if k != "reference"}
    mirror["owner"] = {**owner, "reference": f"urn:uuid:{us['id']}"}
    entries += [mirror, {**us, "meta": {**meta, **_profile_of(us)}}, {**them, "meta": {**meta, **_profile_of(them)}}]
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "meta": {"versionId": codes.BARS_VERSION_ID, **meta},
        "type": "message",
        "timestamp": stamp,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in entries],
    }


def _profile_of(resource: Json) -> Json:
    """The resource's UK Core profile claim, kept on the copy (the copy keeps the elements that profile needs)."""
    profiles = [p for p in _object(resource.get("meta")).get("profile") or [] if str(p).startswith(codes.UKCORE)]
    return {"profile": profiles} if profiles else {}


def _parties(origin: Origin, task: Json, request: Json | None) -> tuple[Json, Json]:
    """(our Organization, the requester's Organization), fresh ids: the request's receiver and sender as the
    request named them; else as its endpoints (and our Task's owner) identify them."""
    ours = theirs = None
    if request is not None:
        try:
            message = read_message(request)
        except OutcomeError:
            message = None
        if message is not None:
            header = message.resource(0)
            destinations = [d for d in header.get("destination") or [] if isinstance(d, dict)]
            ours = _organization(message, destinations[0].get("receiver") if destinations else None)
            theirs = _organization(message, header.get("sender"))
    owner = _object(task.get("owner"))
    ours = ours or _named_by(_object(owner.get("identifier")), origin.own_endpoint, "the receiving service")
    theirs = theirs or _named_by({}, origin.source_endpoint, "the referrer's organisation")
    return ours, theirs


def _organization(message: Message, reference: Any) -> Json | None:
    """A copy (new id) of the Organization a reference of the request resolves to, or None."""
    at = message.resolve(reference)
    found = message.resource(at) if at is not None else {}
    if found.get("resourceType") != "Organization":
        identifier = _object(_object(reference).get("identifier"))
        return _named_by(identifier, None, "") if identifier.get("value") else None
    kept = ("identifier", "active", "type", "name", "telecom", "address")
    copied = {"resourceType": "Organization", "id": new_id(), "meta": _object(found.get("meta"))}
    copied.update({k: found[k] for k in kept if k in found})
    return copied


def _named_by(identifier: Json, endpoint: str | None, name: str) -> Json:
    """An Organization known only by an identifier, or by a BaRS endpoint ``system|value``."""
    org: Json = {"resourceType": "Organization", "id": new_id()}
    if identifier.get("value"):
        org["identifier"] = [{k: identifier[k] for k in ("system", "value") if k in identifier}]
    elif endpoint and "|" in endpoint:
        system, _, value = endpoint.partition("|")
        org["identifier"] = [{"system": system, "value": value}]
    if name:
        org["name"] = name
    return org


# --- sender side ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Response:
    bundle: Json
    bundle_id: str
    request_bundle_id: str
    service_request: Json
    task: Json | None


def _unprocessable(text: str, location: str, code: str = "invalid") -> OutcomeError:
    return OutcomeError(Problem.UNPROCESSABLE, [Issue("error", code, text, location)])


def read_response(bundle: Json) -> Response:
    """The parts of a ``servicerequest-response``, or OutcomeError (400 malformed)."""
    if not isinstance(bundle.get("id"), str) or bundle.get("type") != "message":
        raise OutcomeError(Problem.BAD_REQUEST, "a response is a message Bundle with an id", location="Bundle.id")
    resources = [e.get("resource") or {} for e in bundle["entry"] if isinstance(e, dict)]
    header = resources[0]
    answer = _object(header.get("response"))
    if not isinstance(answer.get("identifier"), str) or answer.get("code") != "ok":
        text = "a servicerequest-response needs response.identifier (the request's Bundle id) and code ok"
        raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "required", text, f"{HEADER}.response")])
    found = {r.get("resourceType"): r for r in resources[1:] if isinstance(r, dict)}
    if "ServiceRequest" not in found:
        raise _unprocessable("a response must carry the ServiceRequest it is about", f"{HEADER}.focus", "required")
    return Response(bundle, bundle["id"], answer["identifier"], found["ServiceRequest"], found.get("Task"))


def apply_response(repo: Repository, response: Response, now: datetime) -> Json:
    """Update our record of the referral the response is about; the answer of the 200."""
    outbox = Outbox(repo.session)
    sent = outbox.by_bundle(response.request_bundle_id)
    if sent is None or sent.kind != REQUEST or sent.service_request_id is None:
        text = f"no referral was sent from here in a message with Bundle id {response.request_bundle_id}"
        raise _unprocessable(text, f"{HEADER}.response.identifier", "not-found")
    ours, task = sent.service_request_id, response.task
    answer = {**response.bundle, "meta": {**(response.bundle.get("meta") or {}), "lastUpdated": instant(now)}}
    if task is not None and _stale(repo, task):
        return answer
    if task is not None:
        _mirror(repo, task, ours, now, response.bundle["entry"])
    status = response.service_request.get("status")
    copy = repo.current("ServiceRequest", ours)
    if copy is not None and isinstance(status, str) and copy.content.get("status") != status:
        repo.save({**copy.content, "status": status}, now)
    outbox.record_reply(sent.id, str((task or {}).get("status") or status), now)
    return {**response.bundle, "meta": {**(response.bundle.get("meta") or {}), "lastUpdated": instant(now)}}


def _stale(repo: Repository, task: Json) -> bool:
    """A response older than the mirror we hold (delivered out of order) must not move the referral back."""
    held = repo.current("Task", str(task.get("id")))
    return held is not None and str(held.content.get("lastModified", "")) > str(task.get("lastModified", ""))


def _mirror(repo: Repository, task: Json, sr_id: str, now: datetime, bundle_entries: list[Any]) -> None:
    """Keep the receiver's Task as ours to read, its focus our copy of the ServiceRequest."""
    if not isinstance(task.get("id"), str):
        return
    focus = f"ServiceRequest/{sr_id}"
    at = next((i for i, e in enumerate(bundle_entries) if isinstance(e, dict) and e.get("resource") is task), 0)
    permissions.check_mirror(repo, task["id"], focus, f"Bundle.entry[{at}].resource.id")
    mirror = {**task, "focus": {"reference": focus}}
    owner = {k: v for k, v in (task.get("owner") or {}).items() if k != "reference"}
    mirror.pop("owner", None)
    if owner:
        mirror["owner"] = owner
    repo.save(mirror, now)
