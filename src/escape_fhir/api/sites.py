"""Routes of the site directory: its searches, ``$route``, the hub's "to contact" list and re-routing.

Registered before the generic REST routes (api/app.py), so ``GET /HealthcareService`` is answered here from
the directory's indexed columns (escape_fhir.sites.search); reads and history stay the generic routes'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from escape_fhir.api.auth import permit
from escape_fhir.api.deps import Base, Db
from escape_fhir.api.negotiation import InBody, OutFormat, fhir_response, version_headers
from escape_fhir.api.rest import validated
from escape_fhir.fhir.formats import parse
from escape_fhir.service.common import now
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.permissions import Action
from escape_fhir.service.triage import parse_if_match, required_version
from escape_fhir.sites.hub import CONTACT_STATUS, contact_list, reroute, update_contact
from escape_fhir.sites.operations import reroute_parameters, route_operation
from escape_fhir.sites.search import search_sites

router = APIRouter()
READ = permit(Action.READ)


def _search(resource_type: str, request: Request, fmt: str, db: Db, base: str) -> Response:
    with db.read() as repo:
        found = search_sites(repo, resource_type, list(request.query_params.multi_items()), base)
    return fhir_response(found, fmt)


@router.get("/HealthcareService", dependencies=[READ])
def healthcare_services(request: Request, fmt: OutFormat, db: Db, base: Base) -> Response:
    return _search("HealthcareService", request, fmt, db, base)


@router.get("/Location", dependencies=[READ])
def locations(request: Request, fmt: OutFormat, db: Db, base: Base) -> Response:
    return _search("Location", request, fmt, db, base)


@router.get("/Endpoint", dependencies=[READ])
def endpoints(request: Request, fmt: OutFormat, db: Db, base: Base) -> Response:
    return _search("Endpoint", request, fmt, db, base)


@router.post("/$route", dependencies=[READ])
@router.post("/ServiceRequest/$route", dependencies=[READ])
def route(fmt: OutFormat, body: InBody, db: Db) -> Response:
    return fhir_response(route_operation(db, parse(body.data, body.fmt)), fmt)


@router.get("/CommunicationRequest", dependencies=[READ])
def to_contact(request: Request, fmt: OutFormat, db: Db, base: Base) -> Response:
    """The hub's "to contact" list (``status=active`` for what is still to do, ``completed``, ``revoked``)."""
    params = list(request.query_params.multi_items())
    status = None
    for name, value in params:
        if name == "status" and value in CONTACT_STATUS:
            status = value
        elif name != "_format":
            raise OutcomeError(
                Problem.BAD_REQUEST,
                f"{name}={value[:40]}: CommunicationRequest is searched by status=active, completed or revoked only",
                location=name,
            )
    with db.read() as repo:
        return fhir_response(contact_list(repo, status, base), fmt)


@router.put("/CommunicationRequest/{request_id}", dependencies=[permit(Action.UPDATE, "CommunicationRequest")])
def update_to_contact(
    request_id: str, fmt: OutFormat, body: InBody, db: Db, if_match: Annotated[str | None, Header()] = None
) -> Response:
    """Mark an entry of the "to contact" list done (``status`` completed) or no longer needed (revoked, with a
    ``statusReason``), with ``If-Match`` of its version (428 with the current ETag without one)."""
    wanted = parse(body.data, body.fmt)
    if wanted.get("resourceType") != "CommunicationRequest" or wanted.get("id") != request_id:
        text = f"PUT /CommunicationRequest/{request_id} takes that CommunicationRequest, with id {request_id}"
        raise OutcomeError(Problem.BAD_REQUEST, text, location="CommunicationRequest.id")
    validated(wanted)
    expected = required_version(db, "CommunicationRequest", request_id, if_match)
    with db.write() as repo:
        stored = update_contact(repo, request_id, wanted, expected, now())
    return fhir_response(stored.content, fmt, headers=version_headers(stored))


@router.post("/Task/{task_id}/$route", dependencies=[permit(Action.UPDATE, "Task")])
def reroute_task(
    task_id: str, fmt: OutFormat, body: InBody, db: Db, if_match: Annotated[str | None, Header()] = None
) -> Response:
    """Re-route a referral (hub mode): Parameters ``reason`` (required) and ``site`` (a site id; else the next
    best site), with ``If-Match`` of the Task's version; answers the Task's new version."""
    site_id, reason = reroute_parameters(parse(body.data, body.fmt))
    expected = parse_if_match(if_match)
    with db.write() as repo:
        task = repo.current("Task", task_id)
        if task is None or task.deleted:
            raise OutcomeError(Problem.NOT_FOUND, f"Task/{task_id} is not known")
        if task.version_id != expected:
            text = f"If-Match names version {expected}; the current version is {task.version_id}"
            raise OutcomeError(Problem.PRECONDITION_FAILED, text, location="If-Match")
        stored = reroute(repo, task, site_id, reason, now())
    return fhir_response(stored.content, fmt, headers=version_headers(stored))
