"""The one error family of the server and the one table from problem to HTTP status (after medplum's
``outcomes`` module).

Services raise :class:`OutcomeError` with a :class:`Problem` and the issues that explain it; the API turns it
into the HTTP status of :data:`TABLE` and an OperationOutcome body. Every issue carries the BaRS error code in
``details.coding`` (system ``https://fhir.nhs.uk/CodeSystem/http-error-codes``, nhs-standards.md 1.7, example
``409Conflict.json``). REC_BAD_REQUEST, REC_CONFLICT, REC_UNPROCESSABLE_ENTITY and REC_NOT_FOUND are the codes
the BaRS material names; the others follow the same ``REC_<HTTP reason>`` pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from escape_fhir.errors import EscapeFhirError, Issue
from escape_fhir.fhir.outcome import operation_outcome

Json = dict[str, Any]

#: Issues in one OperationOutcome answer: past this, the first ones (errors first) and one issue saying how
#: many were left out. A validator can find an issue per element; 1.5 million would be a 1.5 GB answer.
MAX_ISSUES = 500
HTTP_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
UKCORE_OPERATION_OUTCOME = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"


class Problem(StrEnum):
    BAD_REQUEST = "bad-request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    NOT_ACCEPTABLE = "not-acceptable"
    CONFLICT = "conflict"
    GONE = "gone"
    PRECONDITION_FAILED = "precondition-failed"
    TOO_LARGE = "too-large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    UNPROCESSABLE = "unprocessable"
    PRECONDITION_REQUIRED = "precondition-required"
    SERVER_ERROR = "server-error"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Row:
    status: int
    bars_code: str
    issue_code: str  # the FHIR issue-type used when an issue is made from a plain message


#: Problem -> HTTP status, BaRS error code, default FHIR issue type (FHIR http.html, "HTTP Status Codes").
TABLE: dict[Problem, Row] = {
    Problem.BAD_REQUEST: Row(400, "REC_BAD_REQUEST", "invalid"),
    Problem.UNAUTHORIZED: Row(401, "REC_UNAUTHORIZED", "login"),
    Problem.FORBIDDEN: Row(403, "REC_FORBIDDEN", "forbidden"),
    Problem.NOT_FOUND: Row(404, "REC_NOT_FOUND", "not-found"),
    Problem.METHOD_NOT_ALLOWED: Row(405, "REC_METHOD_NOT_ALLOWED", "not-supported"),
    Problem.NOT_ACCEPTABLE: Row(406, "REC_NOT_ACCEPTABLE", "not-supported"),
    Problem.CONFLICT: Row(409, "REC_CONFLICT", "conflict"),
    Problem.GONE: Row(410, "REC_GONE", "deleted"),
    Problem.PRECONDITION_FAILED: Row(412, "REC_PRECONDITION_FAILED", "conflict"),
    Problem.TOO_LARGE: Row(413, "REC_PAYLOAD_TOO_LARGE", "too-costly"),
    Problem.UNSUPPORTED_MEDIA_TYPE: Row(415, "REC_UNSUPPORTED_MEDIA_TYPE", "not-supported"),
    Problem.UNPROCESSABLE: Row(422, "REC_UNPROCESSABLE_ENTITY", "business-rule"),
    Problem.PRECONDITION_REQUIRED: Row(428, "REC_PRECONDITION_REQUIRED", "required"),
    Problem.SERVER_ERROR: Row(500, "REC_SERVER_ERROR", "exception"),
    Problem.UNAVAILABLE: Row(503, "REC_SERVICE_UNAVAILABLE", "transient"),
}


class OutcomeError(EscapeFhirError):
    """A request the server refuses: the problem (hence the HTTP status) and the issues saying why."""

    def __init__(
        self,
        problem: Problem,
        issues: str | Sequence[Issue],
        *,
        location: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.problem = problem
        self.headers = headers or {}
        if isinstance(issues, str):
            issues = [Issue("error", TABLE[problem].issue_code, issues, location)]
        self.issues = list(issues)
        super().__init__("; ".join(i.message for i in self.issues))

    @property
    def status(self) -> int:
        return TABLE[self.problem].status

    def outcome(self) -> Json:
        return outcome(self.problem, self.issues)


def outcome(problem: Problem | None, issues: Iterable[Issue]) -> Json:
    """An OperationOutcome of ``issues`` (at most :data:`MAX_ISSUES` of them, then a count of the rest);
    with a problem, each error issue carries its BaRS error code."""
    body = operation_outcome(_capped(list(issues)))
    body = {"resourceType": "OperationOutcome", "meta": {"profile": [UKCORE_OPERATION_OUTCOME]}, **body}
    if problem is not None:
        coding = {"system": HTTP_ERROR_CODES, "code": TABLE[problem].bars_code}
        for issue in body["issue"]:
            if issue["severity"] in ("error", "fatal"):
                issue["details"] = {"coding": [dict(coding)]}
    return body


def _capped(issues: list[Issue]) -> list[Issue]:
    if len(issues) <= MAX_ISSUES:
        return issues
    ranked = sorted(issues, key=lambda i: i.severity not in ("fatal", "error"))  # stable: errors first
    left_out = len(issues) - (MAX_ISSUES - 1)
    text = f"{left_out} more issues were left out (at most {MAX_ISSUES} are listed, a limit of this server)"
    return [*ranked[: MAX_ISSUES - 1], Issue("information", "too-costly", text, "")]
