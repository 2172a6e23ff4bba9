"""``POST /$process-message`` (FHIR messaging.html; BaRS nhs-standards.md 1.1-1.7) and ``POST /`` (transaction)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from escape_fhir.api.auth import Scopes, permit
from escape_fhir.api.deps import Base, Db, Val
from escape_fhir.api.logs import VISIBLE_ASCII
from escape_fhir.api.negotiation import InBody, OutFormat, fhir_response
from escape_fhir.errors import Issue
from escape_fhir.fhir.formats import parse
from escape_fhir.service import intake, shapes
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.permissions import Action
from escape_fhir.service.transaction import process as process_transaction
from escape_fhir.settings import Settings

router = APIRouter()
MAX_ID = 200


async def bars_ids(request: Request) -> tuple[str, str]:
    """X-Request-ID and X-Correlation-ID, both required on a message (BaRS: 400 REC_BAD_REQUEST without)."""
    found = []
    for name in ("X-Request-ID", "X-Correlation-ID"):
        value = request.headers.get(name, "").strip()
        if not value or len(value) > MAX_ID or not VISIBLE_ASCII.fullmatch(value):
            text = f"the {name} header is required (a GUID of at most {MAX_ID} visible ASCII characters)"
            raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "required", text, name)])
        found.append(value)
    return found[0], found[1]


Ids = Annotated[tuple[str, str], Depends(bars_ids)]


@router.post("/$process-message", dependencies=[permit(Action.MESSAGE)])
def process_message(
    request: Request, ids: Ids, fmt: OutFormat, body: InBody, db: Db, base: Base, validator: Val
) -> Response:
    bundle = parse(body.data, body.fmt)
    settings: Settings = request.app.state.settings
    own = frozenset(settings.endpoints)
    delivery = intake.Delivery(
        ids[0], ids[1], body.data, body.fmt, base, own, request.app.state.red_flags, hub=settings.hub
    )
    result = intake.process_message(db, bundle, delivery, validator)
    return fhir_response(result.body, fmt, data=result.data)


@router.post("/")
def transaction_bundle(
    request: Request, scopes: Scopes, fmt: OutFormat, body: InBody, db: Db, base: Base, validator: Val
) -> Response:
    """Each entry is allowed or refused by the permissions table (``service.permissions``), not the route."""
    bundle = parse(body.data, body.fmt)
    shapes.check_bundle(bundle)  # types of what the transaction reads before validating
    return fhir_response(process_transaction(db, bundle, base, validator, scopes, request.app.state.red_flags), fmt)
