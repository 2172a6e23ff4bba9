"""The validator's front door: ``validate(resource, profiles=...) -> ValidationResult``.

Callers (the CLI, the HTTP endpoint's intake and ``$validate``) use :func:`validate` and
:class:`~escape_fhir.validation.result.ValidationResult`; a :class:`Validator` holds one set of definitions
(for other packages: ``Validator(default_definitions(["path/to/package.tgz"]))``) and its compiled profiles.

What a validation checks is in :mod:`~escape_fhir.validation.walker`; where definitions come from, in
:mod:`~escape_fhir.validation.definitions`. Snapshots are compiled once per profile URL and kept for the
life of the Validator; the default Validator lives as long as the process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from escape_fhir.errors import Issue
from escape_fhir.fhir import bounds
from escape_fhir.validation.result import ValidationResult

if TYPE_CHECKING:
    from escape_fhir.validation.definitions import Definitions
    from escape_fhir.validation.elements import CompiledProfile

__all__ = ["Validator", "default_validator", "validate"]

Json = dict[str, Any]


class Validator:
    """Validates resources against one chain of definitions; compiled profiles are cached per URL."""

    def __init__(self, definitions: Definitions | None = None) -> None:
        if definitions is None:
            from escape_fhir.validation.definitions import default_definitions

            definitions = default_definitions()
        self.definitions = definitions
        self._compiled: dict[str, CompiledProfile | None] = {}
        self._lock = threading.Lock()

    def compiled(self, url: str) -> CompiledProfile | None:
        """The compiled snapshot of a StructureDefinition (``url`` or ``url|version``), None when unknown."""
        found = self._compiled.get(url, _MISSING)
        if found is _MISSING:
            with self._lock:
                found = self._compiled[url] = self._compile(url)
        return found  # type: ignore[return-value]

    def _compile(self, url: str) -> CompiledProfile | None:
        from escape_fhir.validation.elements import compile_snapshot

        elements = self.definitions.snapshot(url)
        if not elements:
            return None
        return compile_snapshot(url, elements)

    def base(self, type_code: str) -> CompiledProfile | None:
        """The base R4 definition of a type or resource."""
        return self.compiled(self.definitions.base_url(type_code))

    def validate(self, resource: Json, profiles: Sequence[str] = ()) -> ValidationResult:
        """Every issue of one resource (a Bundle with everything in it); never raises for bad content.

        Checked against the base type, each ``meta.profile`` (an unknown one is a warning) and each of
        ``profiles`` (an unknown one is an error).
        """
        from escape_fhir.validation.walker import Walk

        bounds.ensure_recursion()  # the walk recurses per element; documents are at most bounds.MAX_DEPTH deep
        walk = Walk(self)
        loc = resource.get("resourceType") if isinstance(resource, dict) else None
        walk.resource(resource, loc if isinstance(loc, str) else "Resource", explicit=profiles)
        return ValidationResult(_unique(walk.issues))


_MISSING = object()
_default: Validator | None = None
_default_lock = threading.Lock()


def default_validator() -> Validator:
    """The process-wide Validator over :func:`~escape_fhir.validation.definitions.default_definitions`."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Validator()
    return _default


def validate(resource: Json, profiles: Sequence[str] = (), definitions: Definitions | None = None) -> ValidationResult:
    """Validate one resource (a Bundle included, with everything in it); never raises for bad content.

    ``profiles`` are canonical URLs to validate against besides the base definition and ``meta.profile``.
    ``definitions`` replaces the default chain (project profiles, package cache, base R4).
    """
    validator = default_validator() if definitions is None else Validator(definitions)
    return validator.validate(resource, profiles)


def _unique(issues: list[Issue]) -> list[Issue]:
    """Issues once each: several profiles of one resource find the same base problems."""
    return list(dict.fromkeys(issues))
