"""The ``$route`` operation without HTTP: a referral Bundle (or a Parameters resource carrying one in its
``resource`` parameter) in, the routing as a Parameters resource out (:mod:`escape_fhir.sites.parameters`).
A Bundle that is no referral, or a referral without a patient postcode, is 422 with the issues located."""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import Issue, MappingError
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.sites.parameters import routing_parameters
from escape_fhir.sites.request import referral_of, request_of
from escape_fhir.sites.routing import route
from escape_fhir.sites.store import directory_for
from escape_fhir.storage import Database

Json = dict[str, Any]


def _bundle_of(body: Json) -> Json:
    if body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or []:
            if isinstance(p, dict) and p.get("name") == "resource" and isinstance(p.get("resource"), dict):
                return dict(p["resource"])
        raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "required", "no resource parameter", "Parameters")])
    if body.get("resourceType") != "Bundle":
        text = "$route takes a referral Bundle, or Parameters with the Bundle as its resource parameter"
        raise OutcomeError(Problem.BAD_REQUEST, text, location="resourceType")
    return body


def route_operation(db: Database, body: Json) -> Json:
    try:
        wanted = request_of(referral_of(_bundle_of(body)))
    except MappingError as exc:
        raise OutcomeError(Problem.UNPROCESSABLE, exc.issues) from None
    with db.read() as repo:
        directory = directory_for(repo, wanted.postcode, wanted.pathway)
    return routing_parameters(route(directory, wanted.pathway, wanted.postcode, wanted.source))


def reroute_parameters(body: Json) -> tuple[str | None, str]:
    """``site`` (optional) and ``reason`` (required) of a ``Task/{id}/$route`` Parameters resource."""
    if body.get("resourceType") != "Parameters":
        raise OutcomeError(Problem.BAD_REQUEST, "Task/$route takes a Parameters resource", location="resourceType")
    found: dict[str, str] = {}
    for p in body.get("parameter") or []:
        if isinstance(p, dict) and p.get("name") in ("site", "reason"):
            value = p.get("valueString") or p.get("valueId") or p.get("valueCode")
            if isinstance(value, str) and value.strip():
                found[p["name"]] = value.strip()
    if "reason" not in found:
        text = "a re-route needs a reason (valueString): it is recorded on the Task"
        raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "required", text, "Parameters.parameter")])
    return found.get("site"), found["reason"]
