"""The triage workflow on FHIR Task (FHIR workflow.html, "Request/Fulfill via Task"; Task.html state machine).

Every accepted referral gets a Task with code ``fulfill``, intent ``order``, ``focus`` the ServiceRequest,
``for`` the Patient and ``owner`` the receiving Organization, status ``requested``. The triage service moves
it on with ``PUT /Task/{id}`` and ``If-Match`` (FHIR http.html#concurrency):

    requested -> accepted | rejected (statusReason required)
    accepted  -> in-progress | completed | rejected
    in-progress -> completed

The ServiceRequest follows (our decision, documented in the README): requested, accepted and in-progress
keep it ``active``; ``completed`` completes it; ``rejected`` revokes it (no further activity should occur,
ServiceRequest.status definitions); a sender's withdrawal revokes it and cancels the Task.

What triage needs to decide is on the Task itself: ``Task.input`` carries the eligibility decision (with the
reasons of every criterion not met or unknown) and the STarT Back risk (LOINC 91352-5) of back referrals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.service.common import ID_REFERRAL_REFERENCE
from escape_fhir.service.limits import ascii_int
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.responses import enqueue_triage_response
from escape_fhir.storage import Database, Stored, VersionConflict, instant

Json = dict[str, Any]

TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"accepted", "rejected"}),
    "accepted": frozenset({"in-progress", "completed", "rejected"}),
    "in-progress": frozenset({"completed"}),
}
#: Task status -> ServiceRequest status.
SERVICE_REQUEST_STATUS = {
    "requested": "active",
    "accepted": "active",
    "in-progress": "active",
    "completed": "completed",
    "rejected": "revoked",
    "cancelled": "revoked",
}
OPEN = frozenset({"requested", "received", "accepted", "ready", "in-progress", "on-hold"})
#: What a triage update may change; anything else must stay as stored.
CHANGEABLE = frozenset({"status", "statusReason", "businessStatus", "note", "output", "lastModified", "meta", "text"})


@dataclass(frozen=True)
class Assessment:
    """The eligibility decision and STarT Back risk shown to triage."""

    decision: str
    summary: str
    risk: str | None


def task_inputs(assessment: Assessment) -> list[Json]:
    decision = {
        "type": {"coding": [{"system": codes.CS_OBSERVATION, "code": "eligibility-assessment"}]},
        "valueCodeableConcept": {
            "coding": [{"system": codes.CS_DECISION, "code": assessment.decision}],
            "text": assessment.summary,
        },
    }
    inputs = [decision]
    if assessment.risk is not None:
        code, display = codes.STARTBACK_RISK_ANSWERS[assessment.risk]
        inputs.append(
            {
                "type": {"coding": [{"system": codes.LOINC, "code": codes.STARTBACK_RISK[0]}]},
                "valueCodeableConcept": {"coding": [{"system": codes.LOINC, "code": code, "display": display}]},
            }
        )
    return inputs


def new_task(
    task_id: str, reference: str, parts: dict[str, Json | None], assessment: Assessment, authored: str
) -> Json:
    """The triage Task of a new referral; ``parts`` holds the ``focus``, ``for``, ``owner`` and ``requester``."""
    task: Json = {
        "resourceType": "Task",
        "id": task_id,
        "identifier": [{"system": ID_REFERRAL_REFERENCE, "value": reference}],
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "description": f"Triage ESCAPE-pain referral {reference}",
    }
    for element in ("focus", "for"):
        task[element] = parts[element]
    task["authoredOn"] = authored
    task["lastModified"] = authored
    for element in ("requester", "owner"):
        if parts.get(element):
            task[element] = parts[element]
    task["input"] = task_inputs(assessment)
    return task


def parse_if_match(value: str | None) -> int:
    """The version of ``If-Match: W/"3"``; 428 without one (RFC 6585), 412 for one that is no version of ours."""
    if not value:
        raise OutcomeError(Problem.PRECONDITION_REQUIRED, 'updates need If-Match: W/"<versionId>"', location="If-Match")
    version = ascii_int(value.strip().removeprefix("W/").strip('"'))
    if version is None:
        text = f"If-Match {value[:40]!r} names no version"
        raise OutcomeError(Problem.PRECONDITION_FAILED, text, location="If-Match")
    return version


def _strip(task: Json) -> Json:
    return {k: v for k, v in task.items() if k not in CHANGEABLE}


def _check_change(current: Json, wanted: Json) -> None:
    if _strip(current) != _strip(wanted):
        changed = sorted(k for k in set(_strip(current)) | set(_strip(wanted)) if current.get(k) != wanted.get(k))
        text = f"triage may change only status, statusReason, businessStatus, note and output; not {', '.join(changed)}"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, f"Task.{changed[0]}")])
    old, new = current.get("status"), wanted.get("status")
    if new != old and new not in TRANSITIONS.get(str(old), frozenset()):
        text = f"a {old} Task cannot become {new}"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, "Task.status")])
    if new == "rejected" and not wanted.get("statusReason"):
        text = "a rejected Task needs a statusReason (why the referral is not accepted)"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "required", text, "Task.statusReason")])


def update_task(db: Database, task_id: str, wanted: Json, if_match: str | None, now: Any) -> Stored:
    """Apply a triage decision; the ServiceRequest's status follows in the same transaction."""
    expected = parse_if_match(if_match)
    with db.write() as repo:
        current = repo.current("Task", task_id)
        if current is None:
            raise OutcomeError(Problem.NOT_FOUND, f"Task/{task_id} is not known")
        if current.version_id != expected:
            text = f"If-Match names version {expected}; the current version is {current.version_id}"
            raise OutcomeError(Problem.PRECONDITION_FAILED, text, location="If-Match")
        _check_change(current.content, wanted)
        body = {**wanted, "lastModified": instant(now)}
        try:
            stored = repo.save(body, now, expected_version=expected)
        except VersionConflict as exc:
            raise OutcomeError(Problem.PRECONDITION_FAILED, f"the current version is {exc.current}") from None
        _follow(repo, stored.content, now)
        # The sender hears of the decision through the outbox, in this transaction (nhs-standards.md 1.7).
        enqueue_triage_response(repo, current.content, stored.content, now)
        return stored


def _follow(repo: Any, task: Json, now: Any) -> None:
    focus = str((task.get("focus") or {}).get("reference", ""))
    kind, _, sr_id = focus.partition("/")
    status = SERVICE_REQUEST_STATUS.get(str(task.get("status")))
    sr = repo.current("ServiceRequest", sr_id) if kind == "ServiceRequest" else None
    if sr is not None and status and sr.content.get("status") != status:
        repo.save({**sr.content, "status": status}, now)
