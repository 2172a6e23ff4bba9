"""FHIRPath invariants: every base constraint compiles; true and false cases (cases_v2b/invariants.json);
all constraints of the R4 model over our example Bundles; unevaluable expressions warn, never raise."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.errors import Issue
from escape_fhir.fhir.r4model import ChildRef, Constraint, model
from escape_fhir.validation.invariants import _place, check_constraints, compile_constraint, evaluate_expression
from escape_fhir.validation.native import NATIVE, Defer
from tests.helpers import EXAMPLES

IN_SCOPE = [
    "Bundle",
    "MessageHeader",
    "ServiceRequest",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "HealthcareService",
    "QuestionnaireResponse",
    "Questionnaire",
    "Observation",
    "Condition",
    "Task",
    "OperationOutcome",
]


def _decimals(value: Any) -> Any:
    """Rows write decimals as "DEC:1.50" so that they reach the engine as Decimal, as the JSON parser gives."""
    if isinstance(value, str) and value.startswith("DEC:"):
        return Decimal(value[4:])
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


CASES: list[dict[str, Any]] = _decimals(
    json.loads((Path(__file__).parent / "cases_v2b" / "invariants.json").read_text())
)


def all_constraints() -> dict[str, Constraint]:
    m = model()
    found: dict[str, Constraint] = {}
    for name in m.type_names():
        structure = m.structure(name)
        for element in structure.elements if structure else ():
            for c in element.constraints:
                found.setdefault(c.key, c)
    return found


def types_used(names: list[str]) -> set[str]:
    """The in-scope resources and every data type reachable from their elements."""
    m, seen, todo = model(), set(), list(names)
    while todo:
        name = todo.pop()
        structure = m.structure(name)
        if name in seen or structure is None:
            continue
        seen.add(name)
        todo += [t.code for e in structure.elements for t in e.types]
    return seen


def test_every_constraint_of_in_scope_types_compiles() -> None:
    m = model()
    expressions = {
        (c.key, c.expression)
        for name in types_used([*IN_SCOPE, "DomainResource", "Element", "Extension", "Narrative", "Reference"])
        for e in m.structure(name).elements  # type: ignore[union-attr]
        for c in e.constraints
    }
    assert len(expressions) > 60
    assert sorted(key for key, expression in expressions if compile_constraint(expression) is None) == []


def test_every_constraint_of_the_model_compiles() -> None:
    failing = [c.key for c in all_constraints().values() if compile_constraint(c.expression) is None]
    assert failing == []


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_constraint(case: dict[str, Any]) -> None:
    constraint = all_constraints()[case["key"]]
    root = case.get("root", case["node"])
    location = case.get("location", root.get("resourceType", ""))
    expected = []
    if case["fails"]:
        severity = "error" if constraint.severity == "error" else "warning"
        expected = [Issue(severity, "invariant", f"{constraint.key}: {constraint.human}", location)]
    assert check_constraints(case["node"], [constraint], location, root) == expected


def test_dict_constraint_uses_human_text() -> None:
    constraint = {"key": "esc-1", "severity": "warning", "human": "Give a name", "expression": "name.exists()"}
    issue = Issue("warning", "invariant", "esc-1: Give a name", "Patient")
    assert check_constraints({"resourceType": "Patient"}, [constraint], "Patient", {"resourceType": "Patient"}) == [
        issue
    ]


def test_unsupported_function_warns_every_time() -> None:
    constraint = {"key": "x-1", "severity": "error", "expression": "code.memberOf('http://example.org/vs')"}
    message = "x-1: constraint not checked, its FHIRPath expression cannot be evaluated (not supported by the FHIRPath engine)"
    expected = [Issue("warning", "not-supported", message, "Observation.code")]
    for _ in range(2):
        assert (
            check_constraints({"text": "a"}, [constraint], "Observation.code", {"resourceType": "Observation"})
            == expected
        )


def test_engine_failure_is_remembered_not_raised() -> None:
    constraint = {"key": "x-2", "severity": "error", "expression": "given is string"}
    message = "x-2: constraint not checked, its FHIRPath expression cannot be evaluated (ValueError: 'is' needs a single item on its left)"
    expected = [Issue("warning", "not-supported", message, "Patient.name[0]")]
    node = {"given": ["a", "b"]}
    assert (
        check_constraints(node, [constraint], "Patient.name[0]", {"resourceType": "Patient", "name": [node]})
        == expected
    )
    assert check_constraints({"given": ["a"]}, [constraint], "Patient.name[0]", {"resourceType": "Patient"}) == expected


def test_constraint_without_expression_is_skipped() -> None:
    constraint = {"key": "x-3", "severity": "error", "xpath": "f:name"}
    assert check_constraints({}, [constraint], "Patient", {"resourceType": "Patient"}) == []


def test_compile_is_cached() -> None:
    assert compile_constraint("name.exists()") is compile_constraint("name.exists()")


def test_evaluate_expression_with_variables() -> None:
    qr = {
        "resourceType": "QuestionnaireResponse",
        "item": [{"linkId": "a", "answer": [{"valueDecimal": Decimal("2.5")}]}],
    }
    expression = "%resource.item.where(linkId = 'a').answer.value > 2"
    assert evaluate_expression(expression, qr, {"resource": qr}) == [True]
    assert evaluate_expression("%unknown.exists()", qr, {}) is None


# --- every constraint of the R4 model over the example Bundles -------------------------------------------------


def _constraints(ref: ChildRef) -> list[Constraint]:
    """The element's constraints and those of its data type's root (ref-1 on Reference, ...)."""
    found = {c.key: c for c in ref.element.constraints}
    if ref.kind == "complex" and ref.context and ref.context[0] == ref.context[1]:
        root = model().element(ref.context[0])
        found.update({c.key: c for c in root.constraints if c.key not in found} if root else {})
    return list(found.values())


def _resource(resource: dict[str, Any], location: str, root: dict[str, Any]) -> list[Issue]:
    kind = resource["resourceType"]
    element = model().element(kind)
    issues = check_constraints(resource, list(element.constraints) if element else [], location, root, resource)
    return issues + _children(resource, (kind, kind), location, root, resource)


def _children(node: dict[str, Any], context: tuple[str, str], location: str, root: Any, resource: Any) -> list[Issue]:
    issues: list[Issue] = []
    for name, value in node.items():
        ref = model().child(context[0], context[1], name)
        if ref is None:
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            here = f"{location}.{name}[{i}]" if isinstance(value, list) else f"{location}.{name}"
            if ref.kind == "resource":
                issues += _resource(item, here, root)
                continue
            issues += check_constraints(item, _constraints(ref), here, root, resource)
            if ref.kind == "complex" and isinstance(item, dict) and ref.context:
                issues += _children(item, ref.context, here, root, resource)
    return issues


BUNDLES = sorted((EXAMPLES / "bundles").glob("*.json"))


@pytest.mark.parametrize("path", BUNDLES, ids=[p.name for p in BUNDLES])
def test_example_bundles_break_no_invariant(path: Path) -> None:
    from escape_fhir.fhir.jsonio import loads

    bundle = loads(path.read_bytes())
    issues = _resource(bundle, "Bundle", bundle)
    # dom-6 (narrative SHOULD be present) is the only finding: the adapter sends no narrative.
    assert {(i.severity, i.message.split(":")[0]) for i in issues} <= {("warning", "dom-6")}


# --- the JSON checks of NATIVE say what the engine says ----------------------------------------------------------

_CONTAINED_IN_ENTRY = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {
            "fullUrl": "urn:uuid:5",
            "resource": {
                "resourceType": "Patient",
                "contained": [{"resourceType": "Practitioner", "id": "p1"}],
                "generalPractitioner": [{"reference": "#p1"}],
            },
        }
    ],
}
EXTRA = [
    {
        "id": "ref-1-hash-alone",
        "key": "ref-1",
        "node": {"reference": "#"},
        "location": "Patient.generalPractitioner[0]",
        "root": {"resourceType": "Patient", "generalPractitioner": [{"reference": "#"}]},
    },
    {
        "id": "ref-1-contained-in-entry-resource",
        "key": "ref-1",
        "node": {"reference": "#p1"},
        "location": "Bundle.entry[0].resource.generalPractitioner[0]",
        "root": _CONTAINED_IN_ENTRY,
    },
    {"id": "dom-6-text-without-div", "key": "dom-6", "node": {"resourceType": "Patient", "text": {"status": "empty"}}},
    {
        "id": "dom-4-contained-last-updated",
        "key": "dom-4",
        "node": {
            "resourceType": "Patient",
            "contained": [{"resourceType": "Basic", "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}],
        },
    },
    {
        "id": "bdl-8-no-full-url",
        "key": "bdl-8",
        "node": {"resource": {"resourceType": "Basic"}},
        "location": "Bundle.entry[0]",
        "root": {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Basic"}}]},
    },
    {
        "id": "ext-1-complex-extension",
        "key": "ext-1",
        "node": {"url": "u", "extension": [{"url": "a", "valueCode": "b"}]},
        "location": "Patient.extension[0]",
        "root": {"resourceType": "Patient"},
    },
]
_SR = {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "ServiceRequest"}}
EXTRA += [
    {"id": "bdl-3-no-type", "key": "bdl-3", "node": {"resourceType": "Bundle", "entry": [_SR]}},
    {"id": "bdl-3-no-type-no-entries", "key": "bdl-3", "node": {"resourceType": "Bundle"}},
    {
        "id": "bdl-3-collection",
        "key": "bdl-3",
        "node": {"resourceType": "Bundle", "type": "collection", "entry": [_SR]},
    },
    {
        "id": "bdl-4-history-without-response",
        "key": "bdl-4",
        "node": {"resourceType": "Bundle", "type": "history", "entry": [_SR]},
    },
    {"id": "bdl-7-no-type-duplicates", "key": "bdl-7", "node": {"resourceType": "Bundle", "entry": [_SR, _SR]}},
    {
        "id": "bdl-7-entries-without-full-url",
        "key": "bdl-7",
        "node": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {"resourceType": "Basic"}}] * 2,
        },
    },
]
NATIVE_CASES = [c for c in CASES + EXTRA if all_constraints()[c["key"]].expression in NATIVE]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in NATIVE_CASES])
def test_native_check_agrees_with_engine(case: dict[str, Any]) -> None:
    expression = all_constraints()[case["key"]].expression
    root = case.get("root", case["node"])
    type_path, resource, container = _place(case.get("location", root["resourceType"]), root)
    compiled = compile_constraint(expression)
    assert compiled is not None
    engine = compiled(case["node"], type_path, {"resource": resource, "rootResource": container}) != [False]
    try:
        native = NATIVE[expression](case["node"], resource, container)
    except Defer:
        return  # a shape the JSON check leaves to the engine (dom-3 with contained resources)
    assert native is engine


def test_ref_1_inside_a_bundle_entry_looks_in_the_entry_resource() -> None:
    constraint = all_constraints()["ref-1"]
    location = "Bundle.entry[0].resource.generalPractitioner[0]"
    assert check_constraints({"reference": "#p1"}, [constraint], location, _CONTAINED_IN_ENTRY) == []


def test_base_invariant_messages_quote_the_human_text() -> None:
    """The compact model keeps each constraint's ``human``; base snapshots carry it into the messages."""
    from escape_fhir.validation.api import Validator
    from escape_fhir.validation.definitions import default_definitions

    text = "dom-6: A resource should have narrative for robust management"
    assert all_constraints()["dom-6"].human == text.partition(": ")[2]
    result = Validator(default_definitions(package_cache=False)).validate(
        {"resourceType": "Basic", "code": {"text": "x"}}
    )
    assert [(i.severity, i.message, i.location) for i in result.issues] == [("warning", text, "Basic")]
