"""Checks on one value that the walker applies where a definition asks for them.

Fixed and pattern values (https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.fixed_x_
and ``pattern_x_``), and the hand-offs to the rule modules: FHIRPath invariants
(:mod:`~escape_fhir.validation.invariants`), NHS identifiers (:mod:`~escape_fhir.validation.identifiers`),
Bundle rules (:mod:`~escape_fhir.validation.bundle`) and QuestionnaireResponse against its Questionnaire
(:mod:`~escape_fhir.validation.questionnaire`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from escape_fhir.errors import Issue
from escape_fhir.validation.elements import Node

if TYPE_CHECKING:
    from escape_fhir.validation.walker import Walk

__all__ = ["contains", "fixed_and_pattern", "identifier", "invariants", "resource_rules", "same"]

Json = dict[str, Any]
#: Invariants the walker checks itself, on every element, without FHIRPath (element.html#invs,
#: extensibility.html#Extension): evaluating them through the engine on every element would be most of
#: the time spent validating.
NATIVE_INVARIANTS = frozenset({"ele-1", "ext-1"})


def same(value: Any, expected: Any) -> bool:
    """Equal as FHIR values: numbers by value (``1.0`` is the decimal ``1.0``), objects member by member."""
    if isinstance(expected, dict):
        return (
            isinstance(value, dict)
            and value.keys() == expected.keys()
            and all(same(value[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return isinstance(value, list) and len(value) == len(expected) and all(map(same, value, expected))
    if _number(expected) and _number(value):
        return Decimal(str(value)) == Decimal(str(expected))
    return type(value) is type(expected) and bool(value == expected)


def contains(value: Any, pattern: Any) -> bool:
    """``pattern[x]`` semantics: every member the pattern has, the value has with the same content; each
    item of a pattern array matches some item of the value's array (profiling.html#pattern)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and contains(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(contains(item, p) for item in items) for p in pattern)
    return same(value, pattern)


def _number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def fixed_and_pattern(walk: Walk, node: Node, value: Any, loc: str) -> None:
    if node.fixed is not None and not same(value, node.fixed[1]):
        walk.add("error", "value", f"value must be exactly {_show(node.fixed[1])} ({node.fixed[0]})", loc)
    if node.pattern is not None and not contains(value, node.pattern[1]):
        walk.add("error", "value", f"value must match {_show(node.pattern[1])} ({node.pattern[0]})", loc)


def _show(value: Any) -> str:
    import orjson

    return orjson.dumps(value, default=str).decode() if isinstance(value, dict | list) else repr(value)


def invariants(value: Any, constraints: Sequence[Json], loc: str, walk: Walk) -> list[Issue]:
    """FHIRPath constraints of an element (https://hl7.org/fhir/R4/conformance-rules.html#constraints)."""
    wanted = [c for c in constraints if c.get("key") not in NATIVE_INVARIANTS]
    if not wanted:
        return []
    from escape_fhir.validation.invariants import check_constraints

    root = walk.resources[0] if walk.resources else value
    resource = walk.resources[-1] if walk.resources else None
    return check_constraints(value, wanted, loc, root, resource)


def extension_has_value_or_children(walk: Walk, ext: Json, loc: str) -> None:
    """ext-1: an extension has either sub-extensions or a value, not both (extensibility.html#Extension)."""
    has_value = any(k.startswith("value") for k in ext)
    if bool(ext.get("extension")) == has_value:
        walk.add("error", "invariant", "ext-1: must have either extensions or value[x], not both", loc)


def identifier(walk: Walk, value: Json, loc: str) -> None:
    """NHS number check digit and ODS code shape (nhs-standards.md section 3)."""
    from escape_fhir.validation.identifiers import check_identifier

    walk.issues += check_identifier(value, loc)


def resource_rules(walk: Walk, res: Json, rt: str, loc: str) -> None:
    """Rules of a whole resource beyond its elements: Bundle rules, a QuestionnaireResponse's answers."""
    if rt == "Bundle":
        _bundle(walk, res, loc)
    elif rt == "QuestionnaireResponse":
        _questionnaire_response(walk, res, loc)


def _bundle(walk: Walk, res: Json, loc: str) -> None:
    try:
        from escape_fhir.validation.bundle import check_bundle
    except ImportError:  # pragma: no cover - the Bundle rules module lands separately
        return
    walk.issues += check_bundle(res, loc)


def _questionnaire_response(walk: Walk, res: Json, loc: str) -> None:
    """SDC validation of answers against the Questionnaire (nhs-standards.md 7.4), when it is known."""
    url = res.get("questionnaire")
    if not isinstance(url, str):
        return
    questionnaire = walk.definitions.questionnaire(url)
    if questionnaire is None:
        message = f"Questionnaire {url} is unknown, so the answers were not checked against it"
        walk.add("warning", "not-found", message, f"{loc}.questionnaire")
        return
    try:
        from escape_fhir.validation.questionnaire import check_questionnaire_response
    except ImportError:  # pragma: no cover - the questionnaire module lands separately
        return
    walk.issues += check_questionnaire_response(res, questionnaire, loc)
