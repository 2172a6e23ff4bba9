"""The triage worklist and the referral page (staff with the ``read`` scope), and triage decisions (the
``triage`` scope) through the same Task rules as ``PUT /Task/{id}``: ``triage.update_task`` with the version
the page was rendered from as ``If-Match``, so a page left open while someone else decided is told so (412)
instead of overwriting that decision."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from escape_fhir.fhir.questionnaires import questionnaire_for
from escape_fhir.pages import cases, contacts
from escape_fhir.pages.access import require
from escape_fhir.pages.questionnaire_form import questions
from escape_fhir.pages.render import PageRefused, redirect, render
from escape_fhir.pages.sessions import check_csrf, session_of
from escape_fhir.service import triage
from escape_fhir.service.common import now
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.settings import Scope
from escape_fhir.storage import Database, instant

router = APIRouter(include_in_schema=False)
ORDERS = {"newest": "Newest first", "oldest": "Waiting longest first", "risk": "Most urgent first"}
#: Button value -> (new Task status, words of the confirmation).
ACTIONS = {
    "accept": ("accepted", "accepted"),
    "reject": ("rejected", "rejected"),
    "start": ("in-progress", "started"),
    "complete": ("completed", "completed"),
}
REASON_LIMIT = 1000


def _choice(value: str | None, allowed: Any) -> str:
    return value if value is not None and value in allowed else ""


@router.get("/triage")
def worklist(
    request: Request,
    status: str = "requested",
    pathway: str = "",
    decision: str = "",
    risk: str = "",
    site: str = "",
    order: str = "newest",
) -> Response:
    require(request, Scope.READ)
    status = _choice(status, cases.WORKLIST_STATUSES) or "requested"
    order = _choice(order, ORDERS) or "newest"
    db: Database = request.app.state.db
    with db.read() as repo:
        found, total = cases.cases(repo, (status,))
        to_contact = contacts.open_count(repo)
    sites = sorted({c.site for c in found})
    chosen = {
        "pathway": _choice(pathway, ("knee-hip", "back")),
        "decision": _choice(decision, ("eligible", "not-eligible", "needs-review")),
        "risk": _choice(risk, ("low", "medium", "high")),
        "site": _choice(site, sites),
    }
    shown = cases.sorted_cases([c for c in found if cases.matches(c, **chosen)], order)
    return render(
        request,
        "worklist.html",
        title="Triage worklist",
        home="/triage",
        rows=shown,
        total=total,
        cap=cases.MAX_ROWS,
        status=status,
        order=order,
        orders=ORDERS,
        site_options=[(s, s) for s in sites],
        chosen=chosen,
        statuses=cases.WORKLIST_STATUSES,
        notice=session_of(request).pop("notice"),
        to_contact=to_contact,
    )


def _detail(request: Request, task_id: str) -> cases.Detail:
    db: Database = request.app.state.db
    with db.read() as repo:
        found = cases.detail(repo, task_id) if len(task_id) <= 64 else None
    if found is None:
        raise PageRefused(
            404, "Referral not found", "There is no referral with this address. It may have been withdrawn."
        )
    return found


def _referral_page(request: Request, found: cases.Detail, status: int = 200, **extra: Any) -> Response:
    return render(
        request,
        "referral.html",
        status,
        title=f"Referral {found.case.reference}",
        home="/triage",
        detail=found,
        case=found.case,
        referral=found.referral,
        notice=session_of(request).pop("notice"),
        startback_text=_startback_text(),
        **{"errors": {}, "reason": "", **extra},
    )


@functools.cache
def _startback_text() -> dict[str, str]:
    """LOINC item code -> the question as our STarT Back Questionnaire words it."""
    questionnaire = questionnaire_for("https://w3id.org/escape-fhir/Questionnaire/startback") or {}
    return {q.link_id: q.text for q in questions(questionnaire)}


@router.get("/triage/{task_id}")
def referral_page(request: Request, task_id: str) -> Response:
    require(request, Scope.READ)
    return _referral_page(request, _detail(request, task_id))


@router.post("/triage/{task_id}")
async def decide(request: Request, task_id: str) -> Response:
    member = require(request, Scope.TRIAGE)
    form = await request.form()
    if not check_csrf(request, form):
        raise PageRefused(403, "Your session has expired", "Go back to the referral, reload it and try again.")
    action = str(form.get("action") or "")
    version = str(form.get("version") or "")
    reason = str(form.get("reason") or "").strip()[:REASON_LIMIT]
    found = await run_in_threadpool(_detail, request, task_id)
    if action not in ACTIONS:
        return _referral_page(request, found, 400, errors={"decision": "Choose what to do with this referral"})
    status, words = ACTIONS[action]
    if status == "rejected" and not reason:
        errors = {"reason": "Enter why the referral is not accepted"}
        return _referral_page(request, found, 400, errors=errors)
    wanted = _decided(found.case.task.content, status, reason, member.name, now())
    try:
        await run_in_threadpool(triage.update_task, request.app.state.db, task_id, wanted, f'W/"{version}"', now())
    except OutcomeError as exc:
        fresh = await run_in_threadpool(_detail, request, task_id)
        if exc.problem in (Problem.PRECONDITION_FAILED, Problem.PRECONDITION_REQUIRED):
            text = (
                f"Someone else changed this referral after you opened it: it is now {fresh.case.status}. "
                "Check it again before you decide."
            )
        else:
            text = "; ".join(i.message for i in exc.issues) or "This decision cannot be made now."
        return _referral_page(request, fresh, 409, errors={"decision": text}, reason=reason)
    session_of(request).set("notice", f"Referral {found.case.reference} {words}.")
    return redirect(request, f"/triage/{task_id}")


def _decided(task: dict[str, Any], status: str, reason: str, who: str, moment: datetime) -> dict[str, Any]:
    """The Task with the decision: status, the reason (``statusReason``, required to reject) and a note of who
    decided on the worklist."""
    wanted = {**task, "status": status}
    if reason:
        wanted["statusReason"] = {"text": reason}
    note = {"authorString": who, "time": instant(moment), "text": f"{status} on the triage worklist by {who}"}
    wanted["note"] = [*(task.get("note") or []), note]
    return wanted
