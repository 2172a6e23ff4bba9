"""What the triage pages show, read from what the server stores: the Tasks (one per referral, carrying the
eligibility decision, STarT Back risk, each criterion with its reason and the fact sources as ``Task.input``,
``service/triage.py``), their ServiceRequests and Patients, and the message log (the sender's original
bytes, read again through the one reader, ``fhir/readers.py``, for the referrer and the STarT Back answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from escape_fhir.domain import PATHWAY_CRITERIA, Referral
from escape_fhir.errors import EscapeFhirError
from escape_fhir.fhir import codes
from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.readers import read_referral
from escape_fhir.service.common import ID_REFERRAL_REFERENCE
from escape_fhir.service.triage import DECISION_INPUT, TRANSITIONS
from escape_fhir.storage import Repository, Stored, TokenFilter
from escape_fhir.storage import tables as t

Json = dict[str, Any]
#: Task statuses the worklist offers; "requested" (awaiting a decision) first.
WORKLIST_STATUSES = ("requested", "accepted", "in-progress")
RISK_ORDER = {"high": 0, "medium": 1, "low": 2}
RISK_BY_LOINC = {code: risk for risk, (code, _) in codes.STARTBACK_RISK_ANSWERS.items()}
#: The most rows one worklist page reads (filters apply to them); the page says when there were more.
MAX_ROWS = 500
_ONLY = {
    pathway: set(criteria) - {c for p, cs in PATHWAY_CRITERIA.items() if p != pathway for c in cs}
    for pathway, criteria in PATHWAY_CRITERIA.items()
}


@dataclass(frozen=True)
class Criterion:
    code: str
    title: str
    outcome: str
    reason: str


@dataclass
class Case:
    task: Stored
    reference: str
    status: str
    authored: str
    pathway: str | None
    decision: str
    summary: str
    risk: str | None
    site: str
    patient: Json = field(default_factory=dict)
    criteria: list[Criterion] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)

    @property
    def patient_name(self) -> str:
        return person_name(self.patient) or "Name not given"

    @property
    def actions(self) -> frozenset[str]:
        return TRANSITIONS.get(self.status, frozenset())


def person_name(resource: Json) -> str:
    for name in resource.get("name") or []:
        if isinstance(name, dict):
            if name.get("text"):
                return str(name["text"])
            parts = [*(name.get("given") or []), name.get("family") or ""]
            text = " ".join(str(p) for p in parts if p)
            if text:
                return text
    return ""


def _inputs(task: Json) -> list[tuple[str, str, Json]]:
    found = []
    for item in task.get("input") or []:
        coding = ((item.get("type") or {}).get("coding") or [{}])[0] if isinstance(item, dict) else {}
        found.append((str(coding.get("system", "")), str(coding.get("code", "")), item))
    return found


def _pathway(criteria: list[Criterion], service_request: Json | None) -> str | None:
    shown = {c.code for c in criteria}
    for pathway, only in _ONLY.items():
        if shown & only:
            return pathway.value
    for concept in (service_request or {}).get("code", {}).get("coding") or []:
        if isinstance(concept, dict) and concept.get("system") == codes.CS_PROGRAMME:
            return str(concept.get("code"))
    return None


def case_of(task: Stored, service_request: Json | None, patient: Json | None, site: str) -> Case:
    content = task.content
    decision, summary, risk = "not assessed", "", None
    criteria, sources, not_understood = [], [], []
    for system, code, item in _inputs(content):
        value = item.get("valueCodeableConcept") or {}
        coded = (value.get("coding") or [{}])[0]
        if system == codes.CS_OBSERVATION and code == DECISION_INPUT:
            decision, summary = str(coded.get("code", decision)), str(value.get("text", ""))
        elif system == codes.LOINC and code == codes.STARTBACK_RISK[0]:
            risk = RISK_BY_LOINC.get(str(coded.get("code")))
        elif system == codes.CS_CRITERION:
            title = str(((item.get("type") or {}).get("coding") or [{}])[0].get("display", code))
            criteria.append(Criterion(code, title, str(coded.get("code")), str(value.get("text", ""))))
        elif system == codes.CS_OBSERVATION and code == "fact-source":
            sources.append(str(item.get("valueString", "")))
        elif system == codes.CS_OBSERVATION and code == "not-understood":
            not_understood.append(str(item.get("valueString", "")))
    reference = next(
        (str(i.get("value")) for i in content.get("identifier") or [] if i.get("system") == ID_REFERRAL_REFERENCE),
        task.resource_id,
    )
    return Case(
        task=task,
        reference=reference,
        status=str(content.get("status")),
        authored=str(content.get("authoredOn", "")),
        pathway=_pathway(criteria, service_request),
        decision=decision,
        summary=summary,
        risk=risk,
        site=site,
        patient=patient or {},
        criteria=criteria,
        sources=sources,
        not_understood=not_understood,
    )


def _target(reference: Any) -> tuple[str, str] | None:
    text = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(text, str) and text.count("/") == 1:
        kind, _, rid = text.partition("/")
        return kind, rid
    return None


def _site(task: Json, found: dict[tuple[str, str], Stored]) -> str:
    owner = task.get("owner") or {}
    key = _target(owner)
    held = found.get(key) if key else None
    name = (held.content.get("name") if held else None) or owner.get("display")
    return str(name) if name else "Not recorded"


def cases(
    repo: Repository, statuses: tuple[str, ...] = (), count: int = MAX_ROWS, offset: int = 0
) -> tuple[list[Case], int]:
    """The Tasks of ``statuses`` (every Task when empty), newest first, one page of ``count``, with what each
    row shows; and the total."""
    filters = [TokenFilter("status", tuple((None, s) for s in statuses))] if statuses else []
    tasks, total = repo.search("Task", filters, newest_first=True, count=count, offset=offset)
    wanted = {k for task in tasks for k in (_target(task.content.get(e)) for e in ("focus", "for", "owner")) if k}
    found = repo.currents(sorted(wanted)) if wanted else {}
    result = []
    for task in tasks:
        sr_key, patient_key = _target(task.content.get("focus")), _target(task.content.get("for"))
        sr = found.get(sr_key) if sr_key else None
        patient = found.get(patient_key) if patient_key else None
        result.append(
            case_of(task, sr.content if sr else None, patient.content if patient else None, _site(task.content, found))
        )
    return result, total


@dataclass(frozen=True)
class LoggedEvent:
    when: datetime
    what: str


@dataclass
class Detail:
    case: Case
    service_request: Json
    referral: Referral | None
    history: list[LoggedEvent]


def referral_number(reference: str) -> int | None:
    digits = reference.removeprefix("ESCAPE-")
    return int(digits) if digits.isdigit() and len(digits) < 10 else None


def detail(repo: Repository, task_id: str) -> Detail | None:
    """The referral page of ``task_id``; None when there is no such Task of a referral."""
    task = repo.current("Task", task_id)
    if task is None or task.deleted:
        return None
    keys = [k for k in (_target(task.content.get(e)) for e in ("focus", "for", "owner")) if k]
    found = repo.currents(keys) if keys else {}
    sr_key, patient_key = _target(task.content.get("focus")), _target(task.content.get("for"))
    sr = found.get(sr_key) if sr_key else None
    patient = found.get(patient_key) if patient_key else None
    case = case_of(task, sr.content if sr else None, patient.content if patient else None, _site(task.content, found))
    number = referral_number(case.reference)
    messages = _messages(repo, number) if number is not None else []
    referral = None
    if messages:
        try:  # the latest message the sender sent, read as any message is (its flags and sources are on the Task)
            referral = read_referral(parse(messages[-1][3], messages[-1][4])).referral
        except (EscapeFhirError, ValueError, RecursionError):
            referral = None
    history = [LoggedEvent(m[0], f"message received: reason {m[1]}, X-Request-ID {m[2]}") for m in messages]
    for version in repo.history("Task", task_id):
        content = version.content
        text = f"Task version {version.version_id}: {content.get('status')}"
        reason = (content.get("statusReason") or {}).get("text")
        if reason:
            text += f" ({reason})"
        notes = content.get("note") or []
        if notes and isinstance(notes[-1], dict) and notes[-1].get("text"):
            text += f"; note: {notes[-1]['text']}"
        history.append(LoggedEvent(version.last_updated, text))
    history.sort(key=lambda e: e.when)
    return Detail(case, sr.content if sr else {}, referral, history)


def _messages(repo: Repository, number: int) -> list[tuple[datetime, str, str, bytes, str]]:
    m = t.message
    query = (
        select(m.c.received, m.c.reason, m.c.request_id, m.c.original, m.c.original_format)
        .where(m.c.referral_number == number)
        .order_by(m.c.received)
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in repo.session.execute(query)]


def sorted_cases(found: list[Case], order: str) -> list[Case]:
    """``newest`` (received), ``oldest`` (longest waiting first) or ``risk`` (STarT Back high first, then
    needs-review and not-eligible before eligible: what needs a clinician's judgement soonest)."""
    if order == "oldest":
        return sorted(found, key=lambda c: c.authored)
    if order == "risk":
        decision_rank = {"not-eligible": 0, "needs-review": 1, "eligible": 2}
        by_age = sorted(found, key=lambda c: c.authored, reverse=True)
        return sorted(by_age, key=lambda c: (RISK_ORDER.get(c.risk or "", 3), decision_rank.get(c.decision, 3)))
    return sorted(found, key=lambda c: c.authored, reverse=True)


def matches(case: Case, pathway: str, decision: str, risk: str, site: str) -> bool:
    return (
        (not pathway or case.pathway == pathway)
        and (not decision or case.decision == decision)
        and (not risk or case.risk == risk)
        and (not site or case.site == site)
    )
