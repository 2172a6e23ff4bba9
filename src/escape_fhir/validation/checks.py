"""Checks on one value that the walker applies where a definition asks for them.

Fixed and pattern values (https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.fixed_x_
and ``pattern_x_``), and the hand-offs to the rule modules: FHIRPath invariants
(:mod:`~escape_fhir.validation.invariants`), NHS identifiers (:mod:`~escape_fhir.validation.identifiers`),
Bundle rules (:mod:`~escape_fhir.validation.bundle`) and QuestionnaireResponse against its Questionnaire
(:mod:`~escape_fhir.validation.questionnaire`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from escape_fhir.errors import Issue
from escape_fhir.validation.display import check_display
from escape_fhir.validation.elements import Node
from escape_fhir.validation.native import NATIVE, Defer, Native

if TYPE_CHECKING:
    from escape_fhir.validation.walker import Walk

__all__ = [
    "QUANTITY_TYPES",
    "coding",
    "contains",
    "fixed_and_pattern",
    "identifier",
    "invariants",
    "quantity",
    "resource_rules",
    "same",
]

Json = dict[str, Any]


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


def invariants(value: Any, node: Node, loc: str, walk: Walk) -> list[Issue]:
    """FHIRPath constraints of an element (https://hl7.org/fhir/R4/conformance-rules.html#constraints).

    Those of :data:`~escape_fhir.validation.native.NATIVE` are checked on the JSON here; the rest, and any a
    JSON check defers, go to :func:`~escape_fhir.validation.invariants.check_constraints`.
    """
    natives, engine = node.plan if node.plan is not None else _plan(node)
    if not walk.resources:
        return _in_engine(value, [c for _, c, _ in natives] + engine, loc, walk)
    found: list[Issue] = []
    for check, constraint, message in natives:
        try:
            holds = check(value, walk.resources[-1], walk.containers[-1])
        except Defer:  # a shape the JSON check does not model: the engine decides
            engine = [*engine, constraint]
            continue
        if not holds:
            found.append(
                Issue("error" if constraint.get("severity") == "error" else "warning", "invariant", message, loc)
            )
    return found + _in_engine(value, engine, loc, walk) if engine else found


def _plan(node: Node) -> tuple[list[tuple[Native, Json, str]], list[Json]]:
    """The node's invariants split once into JSON checks (with their message) and engine evaluations."""
    natives: list[tuple[Native, Json, str]] = []
    engine: list[Json] = []
    for constraint in node.invariants:
        check = NATIVE.get(constraint["expression"])
        if check is None:
            engine.append(constraint)
        else:
            text = constraint.get("human") or constraint["expression"]
            natives.append((check, constraint, f"{constraint.get('key', '')}: {text}"))
    node.plan = plan = (natives, engine)
    return plan


def _in_engine(value: Any, constraints: Sequence[Json], loc: str, walk: Walk) -> list[Issue]:
    from escape_fhir.validation.invariants import check_constraints

    root = walk.resources[0] if walk.resources else value
    resource = walk.resources[-1] if walk.resources else None
    found: list[Issue] = []
    evaluate: list[Json] = []
    for constraint in constraints:
        expression = constraint["expression"]
        members = _focus_members(expression) if isinstance(value, dict) else None
        if members is None or any(_present(value, m) for m in members):
            evaluate.append(constraint)
            continue
        # Every element the expression reads is absent, so its verdict is the same on every element:
        # computed once per expression (``dom-2`` ... ``dom-5`` on the many resources with no ``contained``).
        key = (expression, str(constraint.get("key")), str(constraint.get("severity")))
        if key not in _VERDICTS:
            _VERDICTS[key] = [(i.severity, i.code, i.message) for i in check_constraints({}, [constraint], loc, root)]
        found += [Issue(severity, code, message, loc) for severity, code, message in _VERDICTS[key]]
    if evaluate:
        found += check_constraints(value, evaluate, loc, root, resource)
    return found


#: Verdicts of expressions on an element that has none of the members they read (see _focus_members).
_VERDICTS: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
#: Functions whose value on the focus itself does not depend on what the focus holds.
_FOCUS_SAFE_FUNCTIONS = frozenset({"empty", "exists", "not", "count"})
#: Functions whose argument is evaluated once per input item: on an absent member it never runs.
_ITERATING_FUNCTIONS = frozenset({"where", "select", "all", "exists", "repeat"})
_FOCUS_DEPENDENT = frozenset({"ExternalConstantTerm", "ThisInvocation", "IndexInvocation", "TotalInvocation"})


@functools.cache
def _focus_members(expression: str) -> frozenset[str] | None:
    """The member names an expression can read from its focus; None when its value may depend on more.

    More: an environment variable (``%resource``) or ``$this``/``$index``/``$total`` outside the argument of
    an iterating function (``where``, ``all``...), or a function applied to the focus itself (``children()``,
    ``hasValue()``, ``is()``...). Names inside arguments count too, which over-approximates: only ever more
    evaluation, never a wrong verdict.
    """
    from fhirpathpy.parser import parse

    try:
        tree = parse(expression)
    except Exception:  # fhirpathpy raises bare Exceptions on syntax errors; the invariant module reports them
        return None
    members: set[str] = set()
    return frozenset(members) if _scan(tree, False, members) else None


def _scan(node: Json, per_item: bool, members: set[str]) -> bool:
    """Collect member names under ``node``; False when the value may depend on more than those members."""
    kind = node.get("type")
    children: list[Json] = node.get("children") or []
    if kind in _FOCUS_DEPENDENT and not per_item:
        return False
    if kind == "MemberInvocation" and not per_item:  # inside where()/all()... names are of each item
        members.add(str(children[0]["text"]).strip("`"))
    if kind == "InvocationTerm" and children and children[0].get("type") == "FunctionInvocation" and not per_item:
        functn = children[0]["children"][0]
        if functn["children"][0]["text"] not in _FOCUS_SAFE_FUNCTIONS or len(functn["children"]) > 1:
            return False
    if kind == "Functn":
        iterating = children[0]["text"] in _ITERATING_FUNCTIONS
        return all(_scan(c, per_item or (iterating and c.get("type") == "ParamList"), members) for c in children)
    return all(_scan(c, per_item, members) for c in children)


def _present(focus: Json, member: str) -> bool:
    """Whether a member may be in the focus: its name, its ``_name`` companion, or a choice ``nameType``."""
    return any(key.startswith(member) or key.startswith("_" + member) for key in focus)


def extension_has_value_or_children(walk: Walk, ext: Json, loc: str) -> None:
    """ext-1: an extension has either sub-extensions or a value, not both (extensibility.html#Extension)."""
    has_value = any(k.startswith("value") for k in ext)
    if bool(ext.get("extension")) == has_value:
        walk.add("error", "invariant", "ext-1: must have either extensions or value[x], not both", loc)


def identifier(walk: Walk, value: Json, loc: str) -> None:
    """NHS number check digit and ODS code shape (nhs-standards.md section 3)."""
    from escape_fhir.validation.identifiers import check_identifier

    walk.issues += check_identifier(value, loc)


def coding(walk: Walk, value: Json, loc: str) -> None:
    """The display against the code system when it is held whole (:mod:`~escape_fhir.validation.display`)."""
    if "display" in value:
        walk.issues += check_display(walk.definitions, value, loc)


#: Quantity and the types derived from it (https://hl7.org/fhir/R4/datatypes.html#Quantity).
QUANTITY_TYPES = frozenset({"Quantity", "SimpleQuantity", "MoneyQuantity", "Age", "Count", "Distance", "Duration"})


def quantity(walk: Walk, value: Json, loc: str) -> None:
    """A UCUM code must be valid UCUM (:mod:`~escape_fhir.validation.ucum`)."""
    from escape_fhir.validation.ucum import UCUM, ucum_problem

    code = value.get("code")
    if value.get("system") == UCUM and isinstance(code, str):
        problem = ucum_problem(code)
        if problem is not None:
            walk.add("error", "code-invalid", f"{code!r} is not a valid UCUM code: {problem}", f"{loc}.code")


def resource_rules(walk: Walk, res: Json, rt: str, loc: str) -> None:
    """Rules of a whole resource beyond its elements: Bundle rules, a QuestionnaireResponse's answers, the R4
    vital-signs profile an Observation's LOINC code brings."""
    if rt == "Bundle":
        _bundle(walk, res, loc)
    elif rt == "QuestionnaireResponse":
        _questionnaire_response(walk, res, loc)
    elif rt == "Observation":
        from escape_fhir.validation.vitalsigns import check_vital_signs

        walk.issues += check_vital_signs(res, loc)


def _bundle(walk: Walk, res: Json, loc: str) -> None:
    """fullUrl and references inside the Bundle, MessageHeader first (https://hl7.org/fhir/R4/bundle.html)."""
    from escape_fhir.validation.bundle import check_bundle

    walk.issues += check_bundle(res, loc)


def _questionnaire_response(walk: Walk, res: Json, loc: str) -> None:
    """SDC validation of answers against the Questionnaire (nhs-standards.md 7.4), when one is found: contained,
    in the enclosing Bundle, or in the loaded definitions (questionnaire.find_questionnaire)."""
    from escape_fhir.validation.questionnaire import check_questionnaire_response, find_questionnaire

    url = res.get("questionnaire")
    if not isinstance(url, str):
        return
    questionnaire = find_questionnaire(res, walk.resources[:-1], walk.definitions.questionnaire)
    if questionnaire is None:
        message = f"Questionnaire {url} is unknown, so the answers were not checked against it"
        walk.add("warning", "not-found", message, f"{loc}.questionnaire")
        return
    walk.issues += check_questionnaire_response(res, questionnaire, loc, walk.definitions.has_code)
