"""Coding.display against the code system (https://hl7.org/fhir/R4/datatypes.html#Coding).

For a code of a code system held whole (R4's own and HL7 terminology's from the shipped R4 definitions, and
any CodeSystem with ``content = complete`` in the loaded packages: UK Core's, BaRS', the project's), a
display that is neither the concept's display nor one of its designations is an error, as the HL7 reference
validator reports it ("Wrong Display Name"). Its rules, followed here (hapifhir/org.hl7.fhir.core, the
display check in ``org.hl7.fhir.r5.terminologies.validation.ValueSetValidator``):

* language: the validator's default language is English, so the concept's display counts when the code
  system has no ``language`` or an English one, and designations count when they have no language or an
  English one (``en``, ``en-GB`` ...); a code system in another language is not checked;
* case: the match ignores case (Java ``equalsIgnoreCase``; here both sides lower-cased);
* whitespace: it does not ignore whitespace; a display that matches only once runs of whitespace are
  collapsed and the ends trimmed is still an error, reported as "Wrong whitespace in Display Name".

Codes the code system does not hold, and code systems not held whole (SNOMED CT, LOINC, fragments), are not
checked here: that needs a terminology server.
"""

from __future__ import annotations

from typing import Any, Protocol

from escape_fhir.errors import Issue

__all__ = ["check_display", "is_wrong_display"]


class Displays(Protocol):
    def displays(self, system: str, code: str) -> tuple[str, ...] | None: ...


def check_display(terms: Displays, coding: dict[str, Any], loc: str) -> list[Issue]:
    """An error when ``coding.display`` is not a valid display of its code; nothing when it is or cannot be told."""
    display, system, code = coding.get("display"), coding.get("system"), coding.get("code")
    if not (isinstance(display, str) and isinstance(system, str) and isinstance(code, str)):
        return []
    valid = terms.displays(system, code)
    if not valid:
        return []
    wanted = display.lower()
    if any(wanted == v.lower() for v in valid):
        return []
    spacing = any(_normal(display) == _normal(v) for v in valid)
    shown = (
        f"'{valid[0]}'" if len(valid) == 1 else f"one of {len(valid)} choices: " + ", ".join(f"'{v}'" for v in valid)
    )
    message = (
        f"Wrong {'whitespace in ' if spacing else ''}Display Name '{display}' for {system}#{code}. "
        f"Valid display is {shown} (for the language(s) 'en')"
    )
    return [Issue("error", "invalid", message, f"{loc}.display")]


def is_wrong_display(issue: Issue) -> bool:
    """Whether ``issue`` is this module's: a label that does not match its code (the code itself is valid)."""
    return (
        issue.location.endswith(".display") and issue.message.startswith("Wrong ") and "Display Name" in issue.message
    )


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()
