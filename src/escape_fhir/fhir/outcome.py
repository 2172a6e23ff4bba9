"""OperationOutcome: the one error format of the FHIR layer.

Each :class:`~escape_fhir.errors.Issue` becomes an ``OperationOutcome.issue`` with its FHIRPath location in
``expression`` (R4 prefers ``expression``; ``location`` is deprecated, FHIR R4 OperationOutcome).
"""

from __future__ import annotations

from collections.abc import Iterable

from escape_fhir.errors import FieldError, Issue
from escape_fhir.fhir.resources import Json


def operation_outcome(issues: Iterable[Issue]) -> Json:
    out = []
    for issue in issues:
        entry: Json = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.message}
        if issue.location:
            entry["expression"] = [issue.location]
        out.append(entry)
    if not out:
        out.append({"severity": "information", "code": "informational", "diagnostics": "no issues"})
    return {"resourceType": "OperationOutcome", "issue": out}


def issues_from_field_errors(errors: Iterable[FieldError], code: str = "invalid") -> list[Issue]:
    return [Issue("error", code, e.message, e.location) for e in errors]
