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
reasons of every criterion not met or unknown), the STarT Back risk (LOINC 91352-5) of back referrals, and
each criterion with its outcome and reason (as the components of the eligibility Observation).

A sender's ``update`` re-assesses the referral (:func:`revise_task`): the inputs are replaced, a ``note``
says when and what changed (the decision, each criterion whose outcome or reason changed), and the Task gets
a new version. A Task that triage has accepted or started goes back to ``requested`` when the decision or a
criterion's outcome changed: the acceptance was of the referral as it was, and a clinician must look at it
again (a contraindication reported after acceptance must not go unseen). A rejected, completed or cancelled
referral is closed and is not updated (:mod:`escape_fhir.service.referrals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from escape_fhir.domain import Criterion
from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.service.common import ID_REFERRAL_REFERENCE
from escape_fhir.service.limits import ascii_int
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.responses import enqueue_triage_response
from escape_fhir.service.versions import check_only_changed, check_version, save_version
from escape_fhir.storage import Database, Repository, Stored, instant

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
    #: Every criterion with its outcome and reason: shown on the Task, compared when the sender updates.
    criteria: tuple[Criterion, ...] = ()
    #: Where each fact was read in the sender's message, one line each (issue 8, provenance).
    sources: tuple[str, ...] = ()
    #: What was present in the message but not understood, one line each.
    not_understood: tuple[str, ...] = ()


#: Task statuses that an update changing the assessment sends back to ``requested`` (module docstring).
RETRIAGE = frozenset({"accepted", "in-progress"})
DECISION_INPUT = "eligibility-assessment"


def task_inputs(assessment: Assessment) -> list[Json]:
    decision = {
        "type": {"coding": [{"system": codes.CS_OBSERVATION, "code": DECISION_INPUT}]},
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
    inputs += [_criterion_input(c) for c in assessment.criteria]
    for kind, lines in (("fact-source", assessment.sources), ("not-understood", assessment.not_understood)):
        inputs += [
            {"type": {"coding": [{"system": codes.CS_OBSERVATION, "code": kind}]}, "valueString": line}
            for line in lines
        ]
    return inputs


def _criterion_input(c: Criterion) -> Json:
    return {
        "type": {"coding": [{"system": codes.CS_CRITERION, "code": c.code, "display": c.title}]},
        "valueCodeableConcept": {
            "coding": [{"system": codes.CS_CRITERION_OUTCOME, "code": c.outcome.value}],
            "text": c.reason,
        },
    }


def _shown(task: Json, system: str) -> dict[str, tuple[str, str, str]]:
    """The Task's inputs of ``system``: code -> (display, value code, value text)."""
    found = {}
    for item in task.get("input") or []:
        kind = ((item.get("type") or {}).get("coding") or [{}])[0]
        value = item.get("valueCodeableConcept") or {}
        if kind.get("system") == system and kind.get("code"):
            coded = (value.get("coding") or [{}])[0]
            found[str(kind["code"])] = (
                str(kind.get("display", kind["code"])),
                str(coded.get("code")),
                value.get("text", ""),
            )
    return found


def _criterion_changes(before: dict[str, tuple[str, str, str]], after: tuple[Criterion, ...]) -> list[tuple[str, bool]]:
    """Per criterion whose outcome or reason changed (new assessment's order): a phrase, outcome changed."""
    changes = []
    for c in after:
        _, outcome, reason = before.get(c.code, (c.title, "not assessed", ""))
        if outcome != c.outcome.value:
            changes.append((f"{c.title}: {outcome} -> {c.outcome.value} ({c.reason})", True))
        elif reason != c.reason:
            changes.append((f"{c.title}: still {outcome}, now {c.reason} (was {reason})", False))
    assessed = {c.code for c in after}
    gone = [(title, outcome) for code, (title, outcome, _) in before.items() if code not in assessed]
    return changes + [(f"{title}: {outcome} -> not assessed", True) for title, outcome in gone]


def revise_task(task: Json, assessment: Assessment, stamp: str) -> Json:
    """The Task after the sender's update: new inputs, a note of what changed, back to ``requested`` for
    re-triage when triage had accepted it and the assessment changed (module docstring)."""
    decision_before = _shown(task, codes.CS_OBSERVATION).get(DECISION_INPUT, ("", "not recorded", ""))[1]
    criteria_before = _shown(task, codes.CS_CRITERION)
    if criteria_before or not assessment.criteria:
        found = _criterion_changes(criteria_before, assessment.criteria)
        changes, outcomes_changed = [text for text, _ in found], any(outcome for _, outcome in found)
    else:  # a Task written before criteria were shown on it: what each was is not known
        changes, outcomes_changed = ["criteria before this update not recorded on the Task"], True
    changed = decision_before != assessment.decision or outcomes_changed
    if decision_before != assessment.decision:
        parts = [f"decision {decision_before} -> {assessment.decision}"]
    else:
        parts = [f"decision {assessment.decision} (unchanged)"]
    parts += changes or ["no criterion changed"]
    return _noted({**task, "input": task_inputs(assessment)}, parts, changed, stamp)


def _noted(revised: Json, parts: list[str], changed: bool, stamp: str) -> Json:
    """``revised`` with the note of an update and, when ``changed`` and triage had accepted it, back to
    ``requested`` (module docstring)."""
    status = str(revised.get("status"))
    if changed and status in RETRIAGE:
        revised["status"] = "requested"
        revised.pop("statusReason", None)
        revised["businessStatus"] = {"text": f"updated by the sender after it was {status}: re-triage needed"}
        parts = [*parts, f"back to requested for re-triage (was {status})"]
    note = {"time": stamp, "text": f"updated {stamp}: " + "; ".join(parts)}
    revised["note"] = [*(revised.get("note") or []), note]
    revised["lastModified"] = stamp
    return revised


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


def parse_if_match(value: str | None, location: str = "If-Match") -> int:
    """The version of ``If-Match: W/"3"``; 428 without one (RFC 6585), 412 for one that is no version of ours."""
    if not value:
        raise OutcomeError(Problem.PRECONDITION_REQUIRED, 'updates need If-Match: W/"<versionId>"', location=location)
    version = ascii_int(value.strip().removeprefix("W/").strip('"'))
    if version is None:
        text = f"If-Match {value[:40]!r} names no version"
        raise OutcomeError(Problem.PRECONDITION_FAILED, text, location=location)
    return version


def _check_change(current: Json, wanted: Json, where: str = "") -> None:
    prefix = f"{where}.resource" if where else "Task"
    who = "triage may change only status, statusReason, businessStatus, note and output"
    check_only_changed(current, wanted, CHANGEABLE, who, prefix)
    old, new = current.get("status"), wanted.get("status")
    if new != old and new not in TRANSITIONS.get(str(old), frozenset()):
        text = f"a {old} Task cannot become {new}"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, f"{prefix}.status")])
    if new == "rejected" and not wanted.get("statusReason"):
        text = "a rejected Task needs a statusReason (why the referral is not accepted)"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "required", text, f"{prefix}.statusReason")])


def update_task(db: Database, task_id: str, wanted: Json, if_match: str | None, now: Any) -> Stored:
    """Apply a triage decision (``PUT /Task/{id}``); the ServiceRequest's status follows in the same transaction.

    Without ``If-Match`` the answer is 428 carrying the current version, as an ``ETag`` header and in the
    OperationOutcome's text, so a client that saved without a version learns how to retry (read, apply the
    change to what it read, PUT with that ETag as If-Match)."""
    expected = required_version(db, "Task", task_id, if_match)
    with db.write() as repo:
        return apply_change(repo, task_id, wanted, expected, now)


def required_version(db: Database, resource_type: str, resource_id: str, if_match: str | None) -> int:
    """The version ``If-Match`` names; without one, 428 carrying the current version (``ETag`` and text) so
    the client learns how to retry, or 404 when the resource is not held."""
    if if_match:
        return parse_if_match(if_match)
    with db.read() as repo:
        current = repo.current(resource_type, resource_id)
    if current is None or current.deleted:
        raise OutcomeError(Problem.NOT_FOUND, f"{resource_type}/{resource_id} is not known")
    etag = f'W/"{current.version_id}"'
    text = (
        f"updates need If-Match: the current version of {resource_type}/{resource_id} is {etag}; read it, apply "
        f"the change to what was read and PUT it with If-Match: {etag}"
    )
    raise OutcomeError(Problem.PRECONDITION_REQUIRED, text, location="If-Match", headers={"ETag": etag})


def apply_change(repo: Repository, task_id: str, wanted: Json, expected: int, now: Any, where: str = "") -> Stored:
    """The one way a Task changes (``PUT /Task`` and a transaction's ``PUT Task/{id}`` alike): the version
    precondition, the state machine, the ServiceRequest following and the sender told, in ``repo``'s
    transaction. ``where`` prefixes the locations of the issues (a transaction entry)."""
    at = f"{where}.request.ifMatch" if where else "If-Match"
    current = repo.current("Task", task_id)
    if current is None or current.deleted:
        raise OutcomeError(Problem.NOT_FOUND, f"Task/{task_id} is not known", location=where)
    check_version(current, expected, at)
    _check_change(current.content, wanted, where)
    stored = save_version(repo, {**wanted, "lastModified": instant(now)}, now, expected, at)
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
