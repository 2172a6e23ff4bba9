"""Routes of the site directory: its searches, ``$route``, the hub's "to contact" list and re-routing.

Registered before the generic REST routes (api/app.py), so ``GET /HealthcareService`` is answered here from
the directory's indexed columns (escape_fhir.sites.search); reads and history stay the generic routes'.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from escape_fhir.api.auth import permit
from escape_fhir.api.deps import Base, Db
from escape_fhir.api.negotiation import InBody, OutFormat, fhir_response
from escape_fhir.fhir.formats import parse
from escape_fhir.service.permissions import Action
from escape_fhir.sites.operations import route_operation
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
