"""The result of validating one resource: every issue found, and the OperationOutcome that states them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from escape_fhir.errors import Issue

ERROR_SEVERITIES = frozenset({"fatal", "error"})


@dataclass
class ValidationResult:
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity in ERROR_SEVERITIES]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing of severity error or fatal was found (warnings allowed)."""
        return not self.errors

    def outcome(self) -> dict[str, Any]:
        from escape_fhir.fhir.outcome import operation_outcome

        return operation_outcome(self.issues)
