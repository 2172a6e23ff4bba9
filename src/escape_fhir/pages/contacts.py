"""The hub's "to contact" list (hub mode, escape_fhir.sites.hub): the referrals for sites that take them only
by email or phone, each a CommunicationRequest for staff to act on. Staff with the ``read`` scope see the
list; with ``triage`` they mark an entry done (with an optional note of what was done) or no longer needed
(with a required reason), through ``hub.update_contact`` in a write transaction, as
``PUT /CommunicationRequest/{id}`` does: with the version the page was rendered from, so a page left open
while someone else acted on the entry is told so (412) instead of acting twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from escape_fhir.pages.access import require
from escape_fhir.pages.render import PageRefused, redirect, render
from escape_fhir.pages.sessions import check_csrf, session_of
from escape_fhir.service.common import now
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.settings import Scope
from escape_fhir.sites import tables as st
from escape_fhir.sites.hub import update_contact
from escape_fhir.storage import Database, Repository, instant
from escape_fhir.storage import tables as t

router = APIRouter(include_in_schema=False)
#: The lists shown: query value -> (site_contact status, heading).
LISTS = {"open": ("open", "To contact"), "done": ("completed", "Done"), "revoked": ("revoked", "No longer needed")}
#: Button value -> (new CommunicationRequest status, words of the confirmation).
ACTIONS = {"done": ("completed", "marked done"), "revoke": ("revoked", "marked no longer needed")}
TEXT_LIMIT = 1000
#: The most entries one list shows (the done and revoked lists grow without end: the newest are shown).
MAX_ROWS = 500
STATUS_WORDS = {"active": "still to do", "completed": "done", "revoked": "no longer needed"}


@dataclass(frozen=True)
class Entry:
    """One entry of the list, as the page shows it."""

    id: str
    version: int
    status: str
    urgent: bool
    site: str
    medium: str
    what: str
    why: str
    reference: str
    task_id: str | None
    added: datetime
    reason: str
    notes: list[dict[str, Any]]


def open_count(repo: Repository) -> int:
    """How many entries are still to do."""
    c = st.site_contact
    return int(repo.session.execute(select(func.count()).select_from(c).where(c.c.status == "open")).scalar_one())


def entries(repo: Repository, status: str) -> tuple[list[Entry], int]:
    """The entries of one list (a ``site_contact`` status) and how many there are: the open ones urgent first,
    then oldest first; the done and revoked ones newest first (the newest :data:`MAX_ROWS`)."""
    c, r = st.site_contact, t.referral
    total = int(repo.session.execute(select(func.count()).select_from(c).where(c.c.status == status)).scalar_one())
    query = (
        select(c.c.communication_request_id, c.c.referral_number, c.c.site_id, c.c.created, r.c.task_id)
        .select_from(c.outerjoin(r, r.c.number == c.c.referral_number))
        .where(c.c.status == status)
    )
    if status == "open":
        query = query.order_by(c.c.created, c.c.communication_request_id)
    else:
        query = query.order_by(c.c.created.desc(), c.c.communication_request_id).limit(MAX_ROWS)
    rows = list(repo.session.execute(query))
    found = repo.currents([("CommunicationRequest", row.communication_request_id) for row in rows])
    shown = []
    for row in rows:
        stored = found.get(("CommunicationRequest", row.communication_request_id))
        if stored is not None and not stored.deleted:
            shown.append(_entry(stored.content, stored.version_id, row))
    if status == "open":  # urgent first, each group oldest first (the query's order, kept by a stable sort)
        shown.sort(key=lambda e: not e.urgent)
    return shown, total


def _entry(request: dict[str, Any], version: int, row: Any) -> Entry:
    recipient = (request.get("recipient") or [{}])[0]
    medium = (request.get("medium") or [{}])[0]
    payload = (request.get("payload") or [{}])[0]
    reason = (request.get("reasonCode") or [{}])[0]
    identifier = str(((request.get("identifier") or [{}])[0]).get("value", ""))
    reference = f"ESCAPE-{row.referral_number:06d}"
    return Entry(
        id=str(request["id"]),
        version=version,
        status=str(request.get("status")),
        urgent=request.get("priority") in ("urgent", "asap", "stat"),
        site=str(recipient.get("display") or row.site_id),
        medium=str(medium.get("text") or "Not recorded"),
        what=str(payload.get("contentString") or identifier),
        why=str(reason.get("text") or ""),
        reference=reference,
        task_id=row.task_id,
        added=row.created,
        reason=str((request.get("statusReason") or {}).get("text") or ""),
        notes=[n for n in request.get("note") or [] if isinstance(n, dict)],
    )


def _list_page(request: Request, show: str, code: int = 200, **extra: Any) -> Response:
    member = require(request, Scope.READ)
    status, heading = LISTS[show]
    db: Database = request.app.state.db
    with db.read() as repo:
        shown, total = entries(repo, status)
        waiting = open_count(repo) if status != "open" else total
    return render(
        request,
        "to_contact.html",
        code,
        title=f"Referrals to contact: {heading.lower()}" if show != "open" else "Referrals to contact",
        home="/triage",
        show=show,
        lists=LISTS,
        rows=shown,
        total=total,
        cap=MAX_ROWS,
        waiting=waiting,
        can_act=Scope.TRIAGE in member.scopes,
        notice=session_of(request).pop("notice"),
        **{"errors": {}, "values": {}, **extra},
    )


@router.get("/to-contact")
def to_contact(request: Request, show: str = "open") -> Response:
    require(request, Scope.READ)
    return _list_page(request, show if show in LISTS else "open")


@router.post("/to-contact/{request_id}")
async def act(request: Request, request_id: str) -> Response:
    member = require(request, Scope.TRIAGE)
    form = await request.form()
    if not check_csrf(request, form):
        raise PageRefused(403, "Your session has expired", "Go back to the to-contact list, reload it and try again.")
    action = str(form.get("action") or "")
    version = str(form.get("version") or "").strip()
    note = str(form.get("note") or "").strip()[:TEXT_LIMIT]
    reason = str(form.get("reason") or "").strip()[:TEXT_LIMIT]
    values = {"id": request_id, "note": note, "reason": reason}
    if len(request_id) > 64:
        return await _refused(request, 404, values, "There is no entry with this address on the to-contact list.")
    if action not in ACTIONS:
        return await _refused(request, 400, values, "Choose done or no longer needed", f"action-{request_id}")
    if not version.isdigit() or len(version) > 18:
        text = "This page is out of date (it does not say which version of the entry it shows): reload it"
        return await _refused(request, 400, values, text)
    status, words = ACTIONS[action]
    if status == "revoked" and not reason:
        text = "Enter why the site no longer needs to be contacted"
        return await _refused(request, 400, values, text, f"reason-{request_id}")
    try:
        reference = await run_in_threadpool(
            _change, request.app.state.db, request_id, int(version), status, note, reason, member.name
        )
    except OutcomeError as exc:
        text = await run_in_threadpool(_said, request.app.state.db, request_id, exc)
        return await _refused(request, _code(exc.problem), values, text)
    session_of(request).set("notice", f"The entry for referral {reference} is {words}.")
    return redirect(request, "/to-contact")


def _code(problem: Problem) -> int:
    return {Problem.NOT_FOUND: 404, Problem.PRECONDITION_FAILED: 409}.get(problem, 422)


def _said(db: Database, request_id: str, exc: OutcomeError) -> str:
    if exc.problem == Problem.NOT_FOUND:
        return "There is no entry with this address on the to-contact list."
    if exc.problem == Problem.PRECONDITION_FAILED:
        with db.read() as repo:
            current = repo.current("CommunicationRequest", request_id)
        status = str(current.content.get("status")) if current is not None else ""
        return (
            f"Someone else changed this entry after you opened the list: it is now {STATUS_WORDS.get(status, status)}."
            " Check the list again before you act."
        )
    return "; ".join(i.message for i in exc.issues) or "This entry cannot be changed now."


async def _refused(request: Request, code: int, values: dict[str, str], text: str, field: str = "contacts") -> Response:
    return await run_in_threadpool(_list_page, request, "open", code, errors={field: text}, values=values)


def _change(db: Database, request_id: str, version: int, status: str, note: str, reason: str, who: str) -> str:
    """Mark the entry, through the hub's rules; the reference of its referral. A stale version or an entry
    that is not (or no longer) open is refused with the state it is in now."""
    moment = now()
    with db.write() as repo:
        current = repo.current("CommunicationRequest", request_id)
        if current is None or current.deleted:
            raise OutcomeError(Problem.NOT_FOUND, f"CommunicationRequest/{request_id} is not on the to-contact list")
        if current.version_id == version and current.content.get("status") != "active":  # not from a page
            raise OutcomeError(Problem.PRECONDITION_FAILED, f"CommunicationRequest/{request_id} is not open")
        wanted = {**current.content, "status": status}
        if status == "revoked":
            wanted["statusReason"] = {"text": reason}
        said = note if status == "completed" else reason
        words = "done" if status == "completed" else "no longer needed"
        text = f"marked {words} on the to-contact list by {who}" + (f": {said}" if said else "")
        wanted["note"] = [
            *(current.content.get("note") or []),
            {"authorString": who, "time": instant(moment), "text": text},
        ]
        update_contact(repo, request_id, wanted, version, moment)
        row = repo.session.execute(
            select(st.site_contact.c.referral_number).where(st.site_contact.c.communication_request_id == request_id)
        ).scalar_one()
    return f"ESCAPE-{int(row):06d}"
