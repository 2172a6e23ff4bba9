"""FHIRPath invariants (``ElementDefinition.constraint``) evaluated on one element of an instance.

https://hl7.org/fhir/R4/conformance-rules.html#constraints: each constraint's FHIRPath ``expression``
must be true for the element it is defined on; ``severity`` error makes a false result an error, warning
a warning. The expression runs with the element as focus and ``%context``, ``%resource`` the resource
that contains it and ``%rootResource`` the resource that contains ``%resource`` when that one is contained,
else ``%resource`` itself (https://hl7.org/fhir/R4/fhirpath.html#vars: a Bundle is not the container of
its entries).

Evaluation is ``fhirpathpy`` with the FHIR functions of :mod:`escape_fhir.validation.fhirpath_ext`. Each
expression is parsed once (:func:`compile_constraint` is cached). Two exceptions to "run the expression":

* the frequent invariants (the base ones on every element, reference, resource or entry; the Bundle,
  Observation and Condition rules; the project's ``esc-*`` rules) are checked by functions that say the
  same thing directly on the JSON (:data:`escape_fhir.validation.native.NATIVE`, keyed by the exact
  expression text, so a constraint with another expression still runs in the engine, as does an instance
  whose shape a function does not model). The interpreter costs about 0.1 ms per evaluation, more
  than the rest of the validation of an element;
* an expression the engine cannot evaluate (a function it lacks, an environment variable it does not
  know, or an engine error) gives one warning naming the key instead of a verdict; the expression is
  remembered and not evaluated again in this process.

Only a result of ``false`` breaks a constraint. An empty result does not: R4's own invariants rely on it
(``ref-1`` is empty for a Reference with only a ``display``, which every validator accepts; R5 rewrote
it as ``reference.exists() implies ...``).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fhirpathpy.parser import parse

from escape_fhir.errors import Issue
from escape_fhir.fhir.r4model import Constraint
from escape_fhir.validation.fhirpath_ext import R4_PATHS, evaluate, known_function
from escape_fhir.validation.native import NATIVE, NEEDS_PLACE, Defer

__all__ = [
    "check_constraints",
    "compile_constraint",
    "engine_calls",
    "engine_holds",
    "evaluate_expression",
    "unevaluable",
]

Json = dict[str, Any]
Compiled = Callable[[Any, "str | None", Mapping[str, Any]], list[Any]]

# FHIRPath environment variables we can supply (https://hl7.org/fhir/R4/fhirpath.html#vars).
_VARIABLES = frozenset({"ucum", "sct", "loinc", "context", "resource", "rootResource"})
_CODE_SYSTEMS = {"sct": "http://snomed.info/sct", "loinc": "http://loinc.org"}
_SEGMENT = re.compile(r"([A-Za-z_]\w*)(?:\[(\d+)\])?")

#: Expressions that could not be evaluated, with the reason: not tried again.
_UNEVALUABLE: dict[str, str] = {}
#: Constraint key -> how many times the engine evaluated it in this process (bench/validate.py prints it).
engine_calls: Counter[str] = Counter()


@functools.cache
def _parsed(expression: str) -> tuple[Any, frozenset[str]] | None:
    """The parse tree and the environment variables an expression uses; None if it cannot be evaluated."""
    try:
        parsed = parse(expression)
    except Exception:  # fhirpathpy's parser raises bare Exceptions for syntax errors
        return None
    functions, variables = _names(parsed)
    if not all(map(known_function, functions)):
        return None
    return parsed, frozenset(variables)


@functools.cache
def compile_constraint(expression: str) -> Compiled | None:
    """The expression parsed once, as ``f(node, type_path, variables) -> result``; None if unsupported.

    Unsupported: does not parse, calls a function that neither fhirpathpy nor ``fhirpath_ext`` has, or
    names an environment variable other than ``%ucum %sct %loinc %context %resource %rootResource``.
    """
    found = _parsed(expression)
    if found is None or not found[1] <= _VARIABLES:
        return None
    return functools.partial(evaluate, found[0])


def evaluate_expression(expression: str, node: Any, variables: Mapping[str, Any]) -> list[Any] | None:
    """Evaluate any FHIRPath expression on ``node`` with these environment variables (``%ucum``, ``%sct``
    and ``%loinc`` besides); None when it cannot be evaluated. Used for SDC expressions on Questionnaires."""
    found = _parsed(expression)
    if found is None or not found[1] <= _VARIABLES | set(variables):
        return None
    try:
        return evaluate(found[0], node, None, variables)
    except Exception:  # an engine failure means "cannot evaluate", never a crash
        return None


def engine_holds(node: Any, expression: str, location: str, root: Json, resource: Json | None = None) -> bool:
    """The engine's verdict alone, never a JSON check: False when the result is ``[False]``.

    For the tests that prove each JSON check of :data:`~escape_fhir.validation.native.NATIVE` says what the
    engine says; raises what the engine raises, and ValueError for an expression it cannot evaluate.
    """
    compiled = compile_constraint(expression)
    if compiled is None:
        raise ValueError(f"the engine cannot evaluate {expression!r}")
    type_path, found, container = _place(location, root)
    variables = {"resource": resource if resource is not None else found, "rootResource": container}
    return compiled(node, type_path, variables) != [False]


def unevaluable(expression: str) -> str | None:
    """Why an expression cannot be evaluated (None when it can, as far as is known)."""
    if expression not in _UNEVALUABLE and compile_constraint(expression) is None:
        _UNEVALUABLE[expression] = "not supported by the FHIRPath engine"
    return _UNEVALUABLE.get(expression)


def check_constraints(
    node: Any, constraints: Sequence[Json | Constraint], location: str, root: Json, resource: Json | None = None
) -> list[Issue]:
    """Evaluate each constraint on ``node``, the JSON value of the element at ``location`` in ``root``.

    ``resource`` is the resource that contains the element (found from ``location`` when None).
    Constraints without an expression (XPath only) are skipped.
    """
    issues: list[Issue] = []
    placed: tuple[str | None, Json, Json] | None = None
    for constraint in constraints:
        key, severity, expression, human = _fields(constraint)
        if not expression:
            continue
        native = NATIVE.get(expression)
        if native is not None:
            if native in NEEDS_PLACE and placed is None:  # the rest skip the walk along the location
                placed = _place(location, root)
            try:
                holds = native(node, *_variables(placed, root, resource))
            except Defer:
                pass  # a shape the function does not model: the engine decides
            else:
                if not holds:
                    issues.append(_failed(key, severity, human or expression, location))
                continue
        if placed is None:
            placed = _place(location, root)
        variables = {"resource": resource if resource is not None else placed[1], "rootResource": placed[2]}
        issues += _check_one(node, placed[0], variables, (key, severity, expression, human), location)
    return issues


def _variables(placed: tuple[str | None, Json, Json] | None, root: Json, resource: Json | None) -> tuple[Json, Json]:
    """``%resource`` and ``%rootResource`` for a native check (only those in NEEDS_PLACE read them)."""
    if placed is None:
        return resource if resource is not None else root, root
    return resource if resource is not None else placed[1], placed[2]


def _check_one(
    node: Any, type_path: str | None, variables: Mapping[str, Any], fields: tuple[str, str, str, str], location: str
) -> list[Issue]:
    key, severity, expression, human = fields
    engine_calls[key] += 1
    compiled = None if unevaluable(expression) else compile_constraint(expression)
    if compiled is None:
        return [_not_checked(key, expression, location)]
    try:
        result = compiled(node, type_path, variables)
    except Exception as e:  # any engine failure is reported as "not checked", never raised
        _UNEVALUABLE[expression] = f"{type(e).__name__}: {e}"[:160]
        return [_not_checked(key, expression, location)]
    if result != [False]:
        return []
    return [_failed(key, severity, human or expression, location)]


def _failed(key: str, severity: str, text: str, location: str) -> Issue:
    return Issue("error" if severity == "error" else "warning", "invariant", f"{key}: {text}", location)


def _not_checked(key: str, expression: str, location: str) -> Issue:
    reason = _UNEVALUABLE.get(expression, "not supported by the FHIRPath engine")
    message = f"{key}: constraint not checked, its FHIRPath expression cannot be evaluated ({reason})"
    return Issue("warning", "not-supported", message, location)


def _fields(constraint: Json | Constraint) -> tuple[str, str, str, str]:
    if isinstance(constraint, Constraint):
        return constraint.key, constraint.severity, constraint.expression, constraint.human
    return (
        str(constraint.get("key", "")),
        str(constraint.get("severity", "error")),
        str(constraint.get("expression") or ""),
        str(constraint.get("human") or ""),
    )


def _place(location: str, root: Json) -> tuple[str | None, Json, Json]:
    """fhirpathpy's type path for the element at ``location``, the resource that contains it and that
    resource's container (itself unless it is a contained resource).

    Follows the location through ``root`` the way fhirpathpy navigates (content references, choice
    names, ``extension``), restarting at each nested resource (``entry[0].resource``, ``contained[1]``).
    """
    current: Any = root
    resource = container = root
    path: str | None = str(root.get("resourceType", ""))
    for segment in location.split(".")[1:]:
        match = _SEGMENT.fullmatch(segment)
        if match is None or not isinstance(current, dict):
            return None, resource, container
        name, index = match.groups()
        current = current.get(name)
        if index is not None:
            current = current[int(index)] if isinstance(current, list) and int(index) < len(current) else None
        path = _child_path(path, name)
        if isinstance(current, dict) and "resourceType" in current:
            path, resource = str(current["resourceType"]), current
            container = container if name == "contained" else current
    return path, resource, container


def _child_path(path: str | None, name: str) -> str:
    child = R4_PATHS["pathsDefinedElsewhere"].get(f"{path}.{name}", f"{path}.{name}")
    if name == "extension":
        child = "Extension"
    found: str = R4_PATHS["path2Type"].get(child, child)
    return found


def _names(tree: Any) -> tuple[set[str], set[str]]:
    """Function names and environment variable names used in a parsed expression."""
    functions: set[str] = set()
    variables: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        kind = node.get("type")
        if kind == "FunctionInvocation":
            functions.add(node["children"][0]["children"][0]["text"])
        elif kind == "ExternalConstant":
            variables.add(node["children"][0]["text"].strip("`'\""))
        stack.extend(node.get("children") or ())
    return functions, variables
