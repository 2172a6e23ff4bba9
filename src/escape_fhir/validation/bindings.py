"""Terminology bindings (https://hl7.org/fhir/R4/terminologies.html#binding).

* ``required``: the code must be in the value set: an error when it is not;
* ``extensible``: a code from the value set should be used when one fits: a warning when it is not;
* ``preferred`` and ``example``: nothing to check.

Membership is asked of the definitions' local terminology. A value set that cannot be expanded locally
(a SNOMED CT or LOINC filter, a code system not held) answers "unknown", and an unknown answer is never an
issue (https://hl7.org/fhir/R4/validation.html#terminology). For a CodeableConcept, one coding in the value
set satisfies the binding (terminologies.html#CodeableConcept), and so does one whose membership cannot be
known.
"""

from __future__ import annotations

from typing import Any, Protocol

from escape_fhir.errors import Issue
from escape_fhir.validation.elements import Binding

__all__ = ["check"]

_SEVERITY = {"required": "error", "extensible": "warning"}
_CODED_STRINGS = frozenset({"code", "string", "uri"})


class Terms(Protocol):
    def has_code(self, value_set_url: str, system: str | None, code: str) -> bool | None: ...


def check(terms: Terms, binding: Binding, type_code: str, value: Any, loc: str) -> list[Issue]:
    """Issues of one value of type ``type_code`` against ``binding`` (empty when it satisfies it)."""
    severity = _SEVERITY.get(binding.strength)
    if severity is None:
        return []
    vs = binding.value_set
    if type_code in _CODED_STRINGS and isinstance(value, str):
        ok = terms.has_code(vs, None, value)
        return [] if ok is not False else [_issue(severity, binding, repr(value), loc)]
    if type_code == "Coding" and isinstance(value, dict):
        return _coding(terms, binding, severity, value, loc)
    if type_code == "CodeableConcept" and isinstance(value, dict):
        return _codeable_concept(terms, binding, severity, value, loc)
    return []


def _coding(terms: Terms, binding: Binding, severity: str, coding: dict[str, Any], loc: str) -> list[Issue]:
    code, system = coding.get("code"), coding.get("system")
    if not isinstance(code, str):
        return []
    if terms.has_code(binding.value_set, system if isinstance(system, str) else None, code) is not False:
        return []
    return [_issue(severity, binding, _show(coding), loc)]


def _codeable_concept(terms: Terms, binding: Binding, severity: str, cc: dict[str, Any], loc: str) -> list[Issue]:
    listed = cc.get("coding")
    listed = listed if isinstance(listed, list) else []  # a wrong type is reported by the structure check
    codings = [c for c in listed if isinstance(c, dict) and isinstance(c.get("code"), str)]
    if not codings:
        if binding.strength != "required":
            return []
        message = f"no code provided, and a code is required from value set {binding.value_set}"
        return [Issue("error", "code-invalid", message, loc)]
    # A system of the wrong JSON type is reported by the structure check; here it counts as absent.
    answers = [terms.has_code(binding.value_set, _text(c.get("system")), c["code"]) for c in codings]
    if any(a is not False for a in answers):
        return []
    shown = ", ".join(_show(c) for c in codings)
    return [_issue(severity, binding, shown, loc)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _show(coding: dict[str, Any]) -> str:
    system = coding.get("system")
    return f"{system}|{coding.get('code')}" if system else repr(coding.get("code"))


def _issue(severity: str, binding: Binding, shown: str, loc: str) -> Issue:
    message = f"{shown} is not in value set {binding.value_set} ({binding.strength} binding)"
    return Issue(severity, "code-invalid", message, loc)
