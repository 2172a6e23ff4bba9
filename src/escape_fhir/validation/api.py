"""The validator's front door: ``validate(resource, profiles=...) -> ValidationResult``.

Callers (the CLI, the HTTP endpoint's intake and ``$validate``) use only :func:`validate` and
:class:`~escape_fhir.validation.result.ValidationResult`; how the checks are done is behind it.

Baseline (until the profile validator lands): R4 structure through the ``fhir.resources`` R4B models and
the NHS number check digit. Both are real checks; the full validator replaces the body, not the signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nhs_number

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.fhir.resources import structure_issues
from escape_fhir.validation.result import ValidationResult

Json = dict[str, Any]


def validate(resource: Json, profiles: Sequence[str] = ()) -> ValidationResult:
    """Validate one resource (a Bundle included, with everything in it); never raises for bad content.

    ``profiles`` are canonical URLs to validate against besides the base definition and ``meta.profile``.
    """
    base = str(resource.get("resourceType", "Resource"))
    issues = structure_issues(resource, base)
    issues += _nhs_numbers(resource, base)
    return ValidationResult(issues)


def _nhs_numbers(node: Any, location: str) -> list[Issue]:
    """Every NHS number identifier in the content must pass the Modulus 11 check (nhs-standards.md 3.1)."""
    found: list[Issue] = []
    if isinstance(node, dict):
        value = node.get("value")
        if node.get("system") == codes.NHS_NUMBER and isinstance(value, str) and not nhs_number.is_valid(value):
            message = f"NHS number {value!r} fails the Modulus 11 check digit"
            found.append(Issue("error", "value", message, f"{location}.value"))
        for key, child in node.items():
            found += _nhs_numbers(child, f"{location}.{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _nhs_numbers(child, f"{location}[{i}]")
    return found
