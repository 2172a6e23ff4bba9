"""One exception handler per error family; every error answer is an OperationOutcome (FHIR http.html).

* :class:`~escape_fhir.service.outcomes.OutcomeError`: the service's own refusals, status from its table;
* :class:`~escape_fhir.errors.FhirFormatError`: unreadable JSON/XML, refused unsafe XML -> 400;
* :class:`~escape_fhir.errors.MappingError`: a Bundle that cannot be mapped -> 422 with located issues;
* Starlette's HTTP errors (unknown route 404, wrong method 405) and FastAPI's request validation -> 400;
* anything else is our bug -> 500 from :class:`~escape_fhir.api.logs.RequestLog`, which logs one bounded
  traceback (without the request body) and echoes the request's ids.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from escape_fhir.api.negotiation import fhir_response, safe_format
from escape_fhir.errors import FhirFormatError, Issue, MappingError
from escape_fhir.fhir.bounds import TooLarge
from escape_fhir.service.outcomes import TABLE, OutcomeError, Problem

_BY_STATUS = {row.status: problem for problem, row in TABLE.items()}


def _answer(request: Request, error: OutcomeError) -> Response:
    return fhir_response(error.outcome(), safe_format(request), error.status, error.headers)


async def on_outcome(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OutcomeError)
    return _answer(request, exc)


async def on_format(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirFormatError)
    too_large = isinstance(exc, TooLarge)
    code = "too-costly" if too_large else "structure"
    issue = Issue("error", code, str(exc).removeprefix(f"{exc.location}: "), exc.location)
    return _answer(request, OutcomeError(Problem.TOO_LARGE if too_large else Problem.BAD_REQUEST, [issue]))


async def on_mapping(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MappingError)
    return _answer(request, OutcomeError(Problem.UNPROCESSABLE, exc.issues))


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    problem = _BY_STATUS.get(exc.status_code, Problem.BAD_REQUEST)
    text = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    error = OutcomeError(problem, text.get(exc.status_code, str(exc.detail)), headers=dict(exc.headers or {}))
    return _answer(request, error)


async def on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = [
        Issue("error", "invalid", str(e.get("msg", "invalid")), ".".join(str(p) for p in e.get("loc", ())))
        for e in exc.errors()
    ]
    return _answer(request, OutcomeError(Problem.BAD_REQUEST, issues))


def internal_error(request: Request) -> Response:
    """The answer to our own bug: a 500 OperationOutcome that says nothing about the cause."""
    return _answer(request, OutcomeError(Problem.SERVER_ERROR, "internal error; the request was not completed"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(OutcomeError, on_outcome)
    app.add_exception_handler(FhirFormatError, on_format)
    app.add_exception_handler(MappingError, on_mapping)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    # Any other exception is our bug: logs.RequestLog answers it (500 with the request's ids) and logs it once.
