"""REST routes: metadata, read, vread, history, search, the triage update, ``$validate`` (FHIR http.html)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from escape_fhir.api.auth import permit
from escape_fhir.api.deps import Base, Db, Val
from escape_fhir.api.negotiation import InBody, OutFormat, fhir_response, version_headers
from escape_fhir.fhir.formats import parse
from escape_fhir.service import rest, subscriptions, triage
from escape_fhir.service.capability import capability_statement
from escape_fhir.service.common import READ_TYPES, now
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.permissions import Action
from escape_fhir.settings import Settings
from escape_fhir.validation import validate

router = APIRouter()
READ = permit(Action.READ)


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


@router.get("/metadata")
def metadata(request: Request, fmt: OutFormat, base: Base) -> Response:
    settings: Settings = request.app.state.settings
    return fhir_response(capability_statement(base, secured=not settings.open_access), fmt)


@router.post("/$validate", dependencies=[permit(Action.VALIDATE)])
def validate_any(request: Request, fmt: OutFormat, body: InBody, validator: Val) -> Response:
    profiles = request.query_params.getlist("profile")
    return fhir_response(rest.validate_operation(parse(body.data, body.fmt), None, profiles, validator), fmt)


@router.post("/{resource_type}/$validate", dependencies=[permit(Action.VALIDATE)])
def validate_type(resource_type: str, request: Request, fmt: OutFormat, body: InBody, validator: Val) -> Response:
    rest.check_type(resource_type, (*READ_TYPES, "Questionnaire", "Bundle"))
    profiles = request.query_params.getlist("profile")
    resource = parse(body.data, body.fmt)
    return fhir_response(rest.validate_operation(resource, resource_type, profiles, validator), fmt)


@router.get("/Questionnaire", dependencies=[READ])
def questionnaires(request: Request, fmt: OutFormat, base: Base) -> Response:
    return fhir_response(rest.questionnaires(_params(request), base), fmt)


@router.get("/Questionnaire/{questionnaire_id}", dependencies=[READ])
def questionnaire(questionnaire_id: str, fmt: OutFormat) -> Response:
    return fhir_response(rest.questionnaire(questionnaire_id), fmt)


def lenient(prefer: str | None) -> bool:
    """``Prefer: handling=lenient`` (FHIR search.html#errors; RFC 7240): unknown search parameters are ignored
    and reported. Anything else, or no header, is strict."""
    for part in (prefer or "").split(","):
        for token in part.split(";"):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == "handling":
                return value.strip().strip('"').lower() == "lenient"
    return False


@router.post("/Subscription", dependencies=[permit(Action.CREATE, "Subscription")])
def create_subscription(request: Request, fmt: OutFormat, body: InBody, db: Db, base: Base) -> Response:
    resource = _subscription(parse(body.data, body.fmt), None)
    stored = subscriptions.create(db, resource, _notify_hosts(request))
    headers = {**version_headers(stored), "Location": f"{base}/Subscription/{stored.resource_id}/_history/1"}
    return fhir_response(stored.content, fmt, 201, headers)


@router.put("/Subscription/{subscription_id}", dependencies=[permit(Action.UPDATE, "Subscription")])
def update_subscription(
    subscription_id: str,
    request: Request,
    fmt: OutFormat,
    body: InBody,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    resource = _subscription(parse(body.data, body.fmt), subscription_id)
    expected = triage.parse_if_match(if_match) if if_match else None
    stored = subscriptions.update(db, subscription_id, resource, expected, _notify_hosts(request))
    return fhir_response(stored.content, fmt, headers=version_headers(stored))


@router.delete("/Subscription/{subscription_id}", dependencies=[permit(Action.DELETE, "Subscription")])
def delete_subscription(subscription_id: str, db: Db) -> Response:
    rest.check_id("Subscription", subscription_id)
    subscriptions.delete(db, subscription_id)
    return Response(status_code=204)


@router.get("/Subscription/{subscription_id}/$status", dependencies=[READ])
def subscription_status(subscription_id: str, fmt: OutFormat, db: Db) -> Response:
    rest.check_id("Subscription", subscription_id)
    return fhir_response(subscriptions.status(db, subscription_id), fmt)


def _notify_hosts(request: Request) -> frozenset[str] | None:
    """The hosts a Subscription may notify: the configured list; any on an open server; none otherwise."""
    settings: Settings = request.app.state.settings
    if settings.subscription_hosts:
        return frozenset(h.lower() for h in settings.subscription_hosts)
    return None if settings.open_access else frozenset()


def _subscription(resource: dict[str, object], subscription_id: str | None) -> dict[str, object]:
    """A Subscription valid as FHIR R4 (400 otherwise) whose id is the URL's (none on create)."""
    if resource.get("resourceType") != "Subscription":
        raise OutcomeError(Problem.BAD_REQUEST, "this takes a Subscription", location="resourceType")
    if subscription_id is not None:
        rest.check_id("Subscription", subscription_id)
        if resource.get("id") != subscription_id:
            raise OutcomeError(Problem.BAD_REQUEST, f"the Subscription's id must be {subscription_id}", location="id")
    validated(resource)
    return resource


@router.get("/{resource_type}", dependencies=[READ])
def search(
    resource_type: str,
    request: Request,
    fmt: OutFormat,
    db: Db,
    base: Base,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    strict = not lenient(prefer)
    return fhir_response(rest.search(db, resource_type, _params(request), base, strict=strict), fmt)


@router.get("/{resource_type}/{resource_id}", dependencies=[READ])
def read(resource_type: str, resource_id: str, fmt: OutFormat, db: Db) -> Response:
    stored = rest.read(db, resource_type, resource_id)
    return fhir_response(stored.content, fmt, headers=version_headers(stored))


@router.get("/{resource_type}/{resource_id}/_history", dependencies=[READ])
def history(resource_type: str, resource_id: str, fmt: OutFormat, db: Db, base: Base) -> Response:
    return fhir_response(rest.history(db, resource_type, resource_id, base), fmt)


@router.get("/{resource_type}/{resource_id}/_history/{version}", dependencies=[READ])
def vread(resource_type: str, resource_id: str, version: str, fmt: OutFormat, db: Db) -> Response:
    stored = rest.vread(db, resource_type, resource_id, version)
    return fhir_response(stored.content, fmt, headers=version_headers(stored))


@router.put("/Task/{task_id}", dependencies=[permit(Action.UPDATE, "Task")])
def update_task(
    task_id: str, fmt: OutFormat, body: InBody, db: Db, if_match: Annotated[str | None, Header()] = None
) -> Response:
    task = parse(body.data, body.fmt)
    if task.get("resourceType") != "Task" or task.get("id") != task_id:
        text = f"PUT /Task/{task_id} takes that Task, with id {task_id}"
        raise OutcomeError(Problem.BAD_REQUEST, text, location="Task.id")
    validated(task)
    stored = triage.update_task(db, task_id, task, if_match, now())
    return fhir_response(stored.content, fmt, headers=version_headers(stored))


def validated(resource: dict[str, object]) -> None:
    result = validate(resource)
    if not result.ok:
        raise OutcomeError(Problem.BAD_REQUEST, result.issues)
