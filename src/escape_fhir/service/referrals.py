"""Storing an accepted referral message: our ids, our referral number, the triage Task, the acknowledgement.

BaRS (nhs-standards.md 1.5, 1.7): ids are assigned by the receiver; the synchronous 200 returns the request
Bundle carrying them, plus a ``planned`` Encounter whose identifier is our human-readable referral reference.
Internal ``urn:uuid:`` references become ``Type/id``. An ``update`` replaces the referral's resources as new
versions of the same ids and re-assesses the referral on its Task (:func:`escape_fhir.service.triage.revise_task`);
a withdrawal (``delete``, or ``update`` with status revoked / entered-in-error) revokes the ServiceRequest,
cancels the Task and the planned Encounter.

Refusals that concern the referral's state are 422 ``business-rule`` (REC_UNPROCESSABLE_ENTITY), never 409:
senders read 409 ``duplicate`` as "already delivered" (nhs-standards.md 1.2), and a ``new`` message for a
referral already held is usually a correction sent with the wrong reason, which must not be taken as
delivered. The text tells the sender what to send instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.service.common import ID_REFERRAL_REFERENCE, new_id, ref, referral_reference, rewrite_references
from escape_fhir.service.messages import WITHDRAWN, Message, sender_identifier
from escape_fhir.service.outcomes import OutcomeError, Problem, outcome
from escape_fhir.service.triage import OPEN, Assessment, new_task, revise_task
from escape_fhir.storage import ReferralRecord, Repository, instant

Json = dict[str, Any]

#: Entries kept in the acknowledgement but not stored: the header is the message's, Questionnaires are
#: definitions (ours are served from the package).
NOT_STORED = frozenset({"MessageHeader", "Questionnaire", "OperationOutcome", "Bundle"})
CLOSED_REFERRAL = frozenset({"revoked", "completed", "entered-in-error"})


class Plan:
    """Which of our ids each entry of the message gets."""

    def __init__(self, message: Message, known: dict[str, tuple[str, str]] | None = None) -> None:
        self.message = message
        self.ids: dict[int, str] = {}
        known = known or {}
        ours = set(known.values())
        for i in range(len(message.entries)):
            kind = message.resource(i).get("resourceType")
            if not isinstance(kind, str) or kind in NOT_STORED:
                continue
            found = next((known[k] for k in self.sender_keys(i) if k in known), None)
            sender_id = message.resource(i).get("id")
            if found is None and (kind, sender_id) in ours:
                found = (kind, str(sender_id))
            self.ids[i] = found[1] if found else new_id()

    def sender_keys(self, i: int) -> list[str]:
        entry, res = self.message.entries[i], self.message.resource(i)
        keys = [entry["fullUrl"]] if isinstance(entry.get("fullUrl"), str) else []
        if isinstance(res.get("id"), str):
            keys.append(ref(str(res["resourceType"]), res["id"]))
        return keys

    def reference(self, i: int) -> str:
        return ref(str(self.message.resource(i)["resourceType"]), self.ids[i])

    def resolve(self, target: str) -> str | None:
        i = self.message.resolve({"reference": target})
        return self.reference(i) if i is not None and i in self.ids else None

    def resource(self, i: int) -> Json:
        body = rewrite_references(self.message.resource(i), self.resolve)
        body["id"] = self.ids[i]
        return dict(body)

    def mapping(self) -> dict[str, tuple[str, str]]:
        out = {}
        for i, rid in self.ids.items():
            for key in self.sender_keys(i):
                out[key] = (str(self.message.resource(i)["resourceType"]), rid)
        return out

    def parts(self, sr: Json) -> dict[str, Json | None]:
        """Focus, for, owner and requester of the triage Task, from the stored ServiceRequest."""
        return {
            "focus": {"reference": self.reference(self.message.service_request_at)},
            "for": sr.get("subject"),
            "owner": self._owner(),
            "requester": sr.get("requester"),
        }

    def _owner(self) -> Json | None:
        """The receiving Organization: the message's destination receiver, else the performer's provider."""
        header = self.message.resource(0)
        candidates = [d.get("receiver") for d in header.get("destination") or [] if isinstance(d, dict)]
        for performer in self.message.service_request.get("performer") or []:
            i = self.message.resolve(performer)
            res = self.message.resource(i) if i is not None else {}
            candidates.append(res.get("providedBy") if res.get("resourceType") == "HealthcareService" else performer)
        for candidate in candidates:
            i = self.message.resolve(candidate)
            if i is not None and i in self.ids and self.message.resource(i).get("resourceType") == "Organization":
                owner: Json = {"reference": self.reference(i)}
                org = self.message.resource(i)
                if org.get("identifier"):
                    owner["identifier"] = org["identifier"][0]
                if org.get("name"):
                    owner["display"] = org["name"]
                return owner
        return None


def planned_encounter(enc_id: str, reference: str, sr: Json, owner: Json | None, start: str) -> Json:
    encounter: Json = {
        "resourceType": "Encounter",
        "id": enc_id,
        "identifier": [{"system": ID_REFERRAL_REFERENCE, "value": reference}],
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "subject": sr.get("subject"),
        "basedOn": [{"reference": ref("ServiceRequest", sr["id"])}],
        "period": {"start": start},
    }
    if owner:
        encounter["serviceProvider"] = owner
    return {k: v for k, v in encounter.items() if v is not None}


def store_new(repo: Repository, message: Message, assessment: Assessment, now: datetime) -> tuple[int, dict[int, Json]]:
    """A new referral: our ids, number, resources, Task and planned Encounter. Returns the number and the
    stored resource of every entry (the Encounter under key -1)."""
    identifier = sender_identifier(message.service_request)
    if identifier and (existing := repo.referral(sender_identifier=identifier)) is not None:
        raise already_held(identifier, existing.number)
    plan = Plan(message)
    sr_id, task_id, enc_id = plan.ids[message.service_request_at], new_id(), new_id()
    number = repo.add_referral(ReferralRecord(0, sr_id, task_id, enc_id, identifier), now)
    resources = {i: plan.resource(i) for i in plan.ids}
    # The Task and the Encounter take their parts from the ServiceRequest as it is stored (only its meta
    # is the server's), so all of them are stored together.
    sr = resources[message.service_request_at]
    parts, reference = plan.parts(sr), referral_reference(number)
    task = new_task(task_id, reference, parts, assessment, instant(now))
    encounter = planned_encounter(enc_id, reference, sr, parts["owner"], instant(now))
    *stored, _, stored_encounter = repo.save_all([*resources.values(), task, encounter], now)
    repo.map_resources(number, plan.mapping())
    return number, {**{i: s.content for i, s in zip(resources, stored, strict=True)}, -1: stored_encounter.content}


#: Where a refusal about the message's reason points.
REASON = "Bundle.entry[0].resource.reason"


def already_held(identifier: str, number: int) -> OutcomeError:
    """422: a ``new`` message for a referral we hold; the sender must send it as an ``update``."""
    text = (
        f"referral {identifier} is already held here as {referral_reference(number)}; this new message is not "
        f"processed. Send the changes as an update: the same referral with MessageHeader.reason "
        f"{codes.CS_MESSAGE_REASON_BARS}|update, in a message with a new Bundle id"
    )
    return OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, REASON)])


def closed(number: int, sr_status: str, task_status: str, change: str) -> OutcomeError:
    """422: the referral is closed (rejected, withdrawn, completed); ``change`` (update, withdraw) is refused."""
    why = {
        "rejected": "was rejected at triage",
        "cancelled": "was withdrawn",
        "completed": "is completed",
    }.get(task_status, f"is {sr_status}")
    then = "send a new referral, with a new identifier" if change == "updated" else "nothing is left to withdraw"
    text = f"{referral_reference(number)} {why} (ServiceRequest {sr_status}); it cannot be {change}: {then}"
    return OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, REASON)])


def find_referral(repo: Repository, message: Message) -> ReferralRecord:
    sr = message.service_request
    found = repo.referral(service_request_id=sr["id"]) if isinstance(sr.get("id"), str) else None
    identifier = sender_identifier(sr)
    if found is None and identifier:
        found = repo.referral(sender_identifier=identifier)
    if found is None:
        where = f"Bundle.entry[{message.service_request_at}].resource.identifier"
        text = f"no referral with identifier {identifier} is held here to {message.reason}"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "not-found", text, where)])
    return found


def _held(repo: Repository, record: ReferralRecord) -> tuple[Json, Json, Json]:
    """The current ServiceRequest, Task and Encounter of a held referral (one query), locked until the
    commit on PostgreSQL so that a triage decision cannot come between reading them and saving them."""
    keys = [
        ("ServiceRequest", record.service_request_id),
        ("Task", record.task_id),
        ("Encounter", record.encounter_id),
    ]
    found = repo.currents(keys, lock=True)
    for kind, rid in keys:
        if (kind, rid) not in found:  # the referral table and the resources are written in one transaction
            raise OutcomeError(Problem.SERVER_ERROR, f"{kind}/{rid} of a held referral is missing")
    sr, task, encounter = (found[k].content for k in keys)
    return sr, task, encounter


def store_update(
    repo: Repository, message: Message, record: ReferralRecord, assessment: Assessment, now: datetime
) -> dict[int, Json]:
    """Replace a held referral's resources as new versions of the same ids; refresh the Task's inputs."""
    sr, task, encounter = _held(repo, record)
    status = sr.get("status")
    if status in CLOSED_REFERRAL:
        raise closed(record.number, str(status), str(task.get("status")), "updated")
    known = repo.referral_resources(record.number)
    known.update({ref("ServiceRequest", record.service_request_id): ("ServiceRequest", record.service_request_id)})
    plan = Plan(message, known)
    plan.ids[message.service_request_at] = record.service_request_id
    resources = {i: plan.resource(i) for i in plan.ids}
    task = revise_task(task, assessment, instant(now))
    *stored, _ = repo.save_all([*resources.values(), task], now)
    new_keys = {k: v for k, v in plan.mapping().items() if k not in known}
    repo.map_resources(record.number, new_keys)
    return {**{i: s.content for i, s in zip(resources, stored, strict=True)}, -1: encounter}


def withdraw(repo: Repository, message: Message, record: ReferralRecord, now: datetime) -> dict[int, Json]:
    """Revoke the ServiceRequest, cancel the Task and the planned Encounter (BaRS cancellation, 1.7)."""
    sr, task, encounter = _held(repo, record)
    if task.get("status") == "completed":
        raise closed(record.number, str(sr.get("status")), "completed", "withdrawn")
    sent = message.service_request
    sr = {**sr, "status": sent.get("status") if sent.get("status") in WITHDRAWN else "revoked"}
    if sent.get("reasonCode"):
        sr["reasonCode"] = sent["reasonCode"]
    changed = [sr]
    if task.get("status") in OPEN:
        reason = {"text": "withdrawn by the sender"}
        changed.append({**task, "status": "cancelled", "statusReason": reason, "lastModified": instant(now)})
    if encounter.get("status") == "planned":
        changed.append({**encounter, "status": "cancelled"})
    saved = repo.save_all(changed, now)
    if encounter.get("status") == "planned":
        encounter = saved[-1].content
    known = repo.referral_resources(record.number)
    plan = Plan(message, known)
    stored: dict[int, Json] = {message.service_request_at: saved[0].content, -1: encounter}
    # The other resources of the referral are answered as held now (read after the saves above).
    others = {i: next((known[k] for k in plan.sender_keys(i) if k in known), None) for i in plan.ids}
    wanted = {i: key for i, key in others.items() if key is not None and i not in stored}
    current = repo.currents(list(wanted.values()))
    stored.update({i: current[key].content for i, key in wanted.items() if key in current})
    return stored


def acknowledgement(message: Message, stored: dict[int, Json], warnings: list[Issue], base: str, now: str) -> Json:
    """The request Bundle with our ids and the planned Encounter (nhs-standards.md 1.7), warnings appended."""
    ours = {i: ref(str(res["resourceType"]), str(res["id"])) for i, res in stored.items() if i >= 0}

    def resolve(target: str) -> str | None:
        i = message.resolve({"reference": target})
        return ours.get(i) if i is not None else None

    entries = []
    for i, entry in enumerate(message.entries):
        if i in stored:
            entries.append({"fullUrl": f"{base}/{ours[i]}", "resource": stored[i]})
        else:
            entries.append({**entry, "resource": rewrite_references(entry.get("resource"), resolve)})
    encounter = stored[-1]
    entries.append({"fullUrl": f"{base}/Encounter/{encounter['id']}", "resource": encounter})
    if warnings:
        entries.append({"fullUrl": f"urn:uuid:{new_id()}", "resource": outcome(None, warnings)})
    ack = {k: v for k, v in message.bundle.items() if k != "entry"}
    # Not the referral message any more (our ids, a planned Encounter): it claims the profile that fits it,
    # never the request's (esc-bdl-2 and esc-bdl-4 fail on it). meta.versionId, the BaRS version, is kept.
    ack["meta"] = {**(message.bundle.get("meta") or {}), "lastUpdated": now, "profile": [codes.PROFILE_ACKNOWLEDGEMENT]}
    ack["entry"] = entries
    return ack
