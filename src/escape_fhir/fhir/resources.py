"""Checking FHIR JSON dicts against the R4 resource models of ``fhir.resources.R4B``.

The translator builds resources as plain FHIR JSON dicts (so values are written exactly as we choose)
and passes each one through the R4B model, which catches a wrong element name, type or cardinality at
build time. R4B matches R4 for every resource used here (DESIGN.md, "Decisions already taken").
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from escape_fhir.errors import Issue

Json = dict[str, Any]


@cache
def _model_class(resource_type: str) -> Any:
    # Imported here: fhir.resources takes ~0.2 s to import, and most users of this module never need it.
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def issues_from_validation_error(exc: ValidationError, base: str) -> list[Issue]:
    """Turn a pydantic error of an R4B model into issues with FHIRPath-like locations."""
    issues = []
    for err in exc.errors():
        location = base
        for part in err["loc"]:
            if isinstance(part, int):
                location += f"[{part}]"
            else:
                location += "." + str(part).removesuffix("__ext")
        message = "unknown element" if err["type"] == "extra_forbidden" else str(err["msg"])
        issues.append(Issue("error", "structure", message, location))
    return issues


def structure_issues(resource: Json, base: str | None = None) -> list[Issue]:
    """Every R4 structure problem of one resource (empty when it parses); never raises."""
    resource_type = resource.get("resourceType")
    base = base or str(resource_type)
    if not isinstance(resource_type, str):
        return [Issue("error", "structure", "resourceType is missing", base)]
    try:
        cls = _model_class(resource_type)
    except (KeyError, ValueError, LookupError):
        return [Issue("error", "not-supported", f"unknown resource type {resource_type!r}", base)]
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        return issues_from_validation_error(exc, base)
    return []


def parse_model(resource: Json, base: str | None = None) -> Any:
    """The R4B model of a resource, or MappingError with every problem located."""
    from escape_fhir.errors import MappingError

    issues = structure_issues(resource, base)
    if issues:
        raise MappingError(issues)
    return _model_class(resource["resourceType"]).model_validate(resource)


def checked(resource: Json) -> Json:
    """Return ``resource`` unchanged after proving it is well-formed R4 (a bug here is ours, so it raises)."""
    issues = structure_issues(resource)
    if issues:
        raise AssertionError(f"translator built invalid {resource.get('resourceType')}: {issues}")
    return resource
