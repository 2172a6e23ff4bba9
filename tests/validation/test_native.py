"""The JSON checks of ``native.NATIVE`` say what the FHIRPath engine says, on generated instances.

For each kind of element an invariant sits on, a generator draws many instances from a table of member
values (absent, null, empty array, one, several, matching codes and others, ``_name`` companions, wrong
JSON types). Each native check is compared with the engine on every instance: the same verdict, or the
check defers (``Defer``) and the engine decides. Where the engine raises, the check must defer. Each
expression must also be seen both true and false, and decided natively more often than deferred, so that
the variations really exercise it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from escape_fhir.fhir.conformance import conformance_resources
from escape_fhir.fhir.r4model import model
from escape_fhir.validation.invariants import _place, compile_constraint
from escape_fhir.validation.native import NATIVE, Defer
from tests.validation.native_kinds import RESOURCE_KINDS, RESOURCE_ONLY_TRUE
from tests.validation.test_invariants import all_constraints

Json = dict[str, Any]
ROUNDS = 160

DECISION = "https://w3id.org/escape-fhir/CodeSystem/eligibility-decision"
OUTCOME = "https://w3id.org/escape-fhir/CodeSystem/eligibility-criterion-outcome"
CRITERION = "https://w3id.org/escape-fhir/CodeSystem/eligibility-criterion"
LOINC = "http://loinc.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
Q = "https://w3id.org/escape-fhir/Questionnaire/"
ABSENT = object()


@functools.cache
def own_expressions() -> dict[str, str]:
    """Key -> expression of the invariants of the project's profiles."""
    return {
        c["key"]: c["expression"]
        for resource in conformance_resources()
        for element in resource.get("differential", {}).get("element", [])
        for c in element.get("constraint", [])
    }


@functools.cache
def typed_expressions() -> dict[str, str]:
    """``Type:key`` -> expression, for the keys R4 gives to several invariants (``Task:inv-1``)."""
    m = model()
    structures = [found for name in m.type_names() if (found := m.structure(name)) is not None]
    return {
        f"{element.path.partition('.')[0]}:{c.key}": c.expression
        for structure in structures
        for element in structure.elements
        for c in element.constraints
    }


def expressions() -> dict[str, str]:
    """Key -> expression: the R4 model's constraints and those of the project's profiles."""
    return {key: c.expression for key, c in all_constraints().items()} | own_expressions() | typed_expressions()


# --- member values ----------------------------------------------------------------------------------------------


def coding(r: random.Random, system: str, codes: list[str]) -> Any:
    """One Coding: the system or another or none, one of ``codes`` or another, sometimes odd shapes."""
    c: Json = {}
    s = r.choice([system, system, "http://example.org/other", ABSENT, ["x"], "COMPANION"])
    k = r.choice([*codes, *codes, "other", ABSENT, 7, "COMPANION"])
    for name, value in (("system", s), ("code", k)):
        if value == "COMPANION":
            c[f"_{name}"] = {"extension": [{"url": "http://example.org/e", "valueString": "x"}]}
            if r.random() < 0.5:
                c[name] = system if name == "system" else codes[0]
        elif value is not ABSENT:
            c[name] = value
    if r.random() < 0.2:
        c["display"] = "d"
    return c


def concept(r: random.Random, system: str, codes: list[str]) -> Any:
    """A CodeableConcept: zero to three codings, text, or an odd shape."""
    roll = r.random()
    if roll < 0.05:
        return "not an object"
    if roll < 0.1:
        return {}
    cc: Json = {}
    n = r.choice([0, 1, 1, 2, 3])
    if n or r.random() < 0.3:
        cc["coding"] = [coding(r, system, codes) for _ in range(n)]
    if r.random() < 0.05:
        cc["coding"] = coding(r, system, codes)  # one object where an array belongs
    if r.random() < 0.5:
        cc["text"] = r.choice(["reason", "", None])
    return cc


def value_x(r: random.Random, concept_value: Callable[[], Any], integers: bool = False) -> Json:
    """value[x] members: a CodeableConcept, another type, two types at once, null, a companion."""
    out: Json = {}
    kinds = r.sample(
        ["CodeableConcept", "CodeableConcept", "Quantity", "Integer", "String", "none"], k=r.choice([1, 1, 2])
    )
    for kind in kinds:
        if kind == "CodeableConcept":
            out["valueCodeableConcept"] = concept_value()
        elif kind == "Quantity":
            out["valueQuantity"] = {"value": Decimal("1.5")}
        elif kind == "Integer":
            out["valueInteger"] = r.choice([0, 3, 5, 9, 10, -1, True, Decimal("2.5")]) if integers else 1
        elif kind == "String":
            out["valueString"] = "s"
    roll = r.random()
    if roll < 0.05:
        out["valueCodeableConcept"] = None
    elif roll < 0.1:
        out["_valueString"] = {"extension": []}
    elif roll < 0.12:
        out["valueCodeableConcept"] = [concept_value()]
    return out


def pick(r: random.Random, members: dict[str, Callable[[], Any]], absent: float = 0.35) -> Json:
    """An object with each member present (by its generator) or absent."""
    return {name: make() for name, make in members.items() if r.random() >= absent}


# --- instances of each kind -----------------------------------------------------------------------------------


def observation(r: random.Random) -> Json:
    decision = ["eligible", "not-eligible", "needs-review"]
    outcome = ["met", "not-met", "unknown"]

    def component() -> Json:
        comp = pick(r, {"code": lambda: concept(r, CRITERION, ["age", "pain", "surgery"])}, 0.1)
        return comp | value_x(r, lambda: concept(r, OUTCOME, outcome))

    obs: Json = {"resourceType": "Observation"} | value_x(r, lambda: concept(r, DECISION, decision), integers=True)
    obs |= pick(
        r,
        {
            "code": lambda: concept(r, LOINC, ["91351-7", "91350-9", "91352-5"]),
            "component": lambda: [component() for _ in range(r.choice([0, 1, 2, 3, 4]))],
            "dataAbsentReason": lambda: {"text": "x"},
        },
    )
    if r.random() < 0.15 and obs.get("component") and isinstance(obs.get("code"), dict):
        obs["component"][0]["code"] = obs["code"]  # obs-7: a component coded like the Observation
    if r.random() < 0.05:
        obs["component"] = {"code": {"text": "one object"}}
    return obs


def first_component(obs: Json) -> Json:
    components = obs.get("component")
    return components[0] if isinstance(components, list) and components else {}


def condition(r: random.Random) -> Json:
    cond: Json = {"resourceType": "Condition"}
    cond |= pick(
        r,
        {
            "clinicalStatus": lambda: concept(r, CLINICAL, ["active", "resolved", "remission", "inactive"]),
            "verificationStatus": lambda: concept(r, VER_STATUS, ["confirmed", "entered-in-error"]),
            "category": lambda: [
                concept(r, "http://example.org/c", ["problem-list-item"]) for _ in range(r.choice([0, 1, 2]))
            ],
        },
    )
    abatement = r.choice(["abatementDateTime", "abatementString", "abatementAge", None, None])
    if abatement is not None:
        cond[abatement] = {"value": 1} if abatement == "abatementAge" else r.choice(["2026-01-01", [], None])
    if r.random() < 0.05:
        cond["category"] = ["problem-list-item"]
    return cond


def entry(r: random.Random) -> Json:
    def resource() -> Json:
        kind = r.choice(
            ["MessageHeader", "ServiceRequest", "ServiceRequest", "Composition", "Patient", "Encounter", None]
        )
        res: Json = {} if kind is None else {"resourceType": kind}
        if kind in ("ServiceRequest", "Encounter") and r.random() < 0.6:
            res["id"] = r.choice(["1", "2"])
        if kind == "Encounter":
            res |= pick(
                r,
                {
                    "status": lambda: r.choice(["planned", "cancelled", "finished"]),
                    "identifier": lambda: [{"value": "E-1"}],
                },
            )
        if r.random() < 0.6:
            res["meta"] = r.choice(
                [{"lastUpdated": "2026-01-01T00:00:00Z"}, {"versionId": "1"}, {}, {"_lastUpdated": {"id": "a"}}]
            )
        if kind == "MessageHeader" and r.random() < 0.8:
            res["focus"] = [
                {"reference": r.choice(["urn:uuid:1", "urn:uuid:2", "Patient/1", "ServiceRequest/1"])}
                for _ in range(r.choice([0, 1, 1, 2]))
            ]
        return res

    found = pick(
        r,
        {
            "fullUrl": lambda: r.choice(
                [
                    "urn:uuid:1",
                    "urn:uuid:2",
                    "http://example.org/Patient/1",
                    "http://example.org/Patient/1/_history/2",
                    "",
                    5,
                ]
            ),
            "resource": resource,
            "search": lambda: {"mode": "match"},
            "request": lambda: {"method": "POST"},
            "response": lambda: {"status": "200"},
        },
        0.3,
    )
    if r.random() < 0.05:
        found["_fullUrl"] = {"extension": []}
    return found


def bundle(r: random.Random) -> Json:
    b: Json = {"resourceType": "Bundle"}
    b |= pick(
        r,
        {
            "type": lambda: r.choice(["message", "document", "searchset", "history", "collection", "transaction", 5]),
            "total": lambda: r.choice([1, 0]),
            "timestamp": lambda: r.choice(["2026-01-01T00:00:00Z", ""]),
            "identifier": lambda: pick(r, {"system": lambda: "urn:ietf:rfc:3986", "value": lambda: "urn:uuid:9"}, 0.3),
            "entry": lambda: [entry(r) for _ in range(r.choice([0, 1, 2, 3, 4]))],
        },
        0.25,
    )
    if r.random() < 0.1 and isinstance(b.get("entry"), list) and b["entry"]:
        b["entry"].insert(
            0,
            {
                "fullUrl": "urn:uuid:0",
                "resource": {"resourceType": "MessageHeader", "focus": [{"reference": "urn:uuid:2"}]},
            },
        )
    return b


def domain_resource(r: random.Random) -> Json:
    res: Json = {"resourceType": "Patient"}
    if r.random() < 0.5:
        res["contained"] = [
            {"resourceType": "Practitioner", "id": "p"}
            | pick(
                r,
                {
                    "meta": lambda: r.choice([{"versionId": "1"}, {"security": [{"code": "s"}]}]),
                    "contained": lambda: [{}],
                },
            )
            for _ in range(r.choice([0, 1, 2]))
        ]
        if r.random() < 0.5:
            res["generalPractitioner"] = [{"reference": "#p"}]
    res |= pick(r, {"text": lambda: r.choice([{"div": "<div/>"}, {"status": "empty"}])})
    return res


def questionnaire_response(r: random.Random) -> Json:
    urls = [f"{Q}knee-hip-eligibility", f"{Q}back-eligibility|1.0", f"{Q}startback", f"{Q}startback|2", f"{Q}other", 3]
    return {"resourceType": "QuestionnaireResponse"} | pick(r, {"questionnaire": lambda: r.choice(urls)}, 0.2)


def message_header(r: random.Random) -> Json:
    bars = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-"
    urls = [f"{bars}referral", f"{bars}cancelled", f"{bars}referral|1.2.0", f"{bars}cancelled|1", f"{bars}other", 3]
    return {"resourceType": "MessageHeader"} | pick(r, {"definition": lambda: r.choice(urls)}, 0.2)


def small(members: dict[str, list[Any]]) -> Callable[[random.Random], Json]:
    """An element whose members each take one of a few values (or are absent)."""

    def make(r: random.Random) -> Json:
        return {name: r.choice(values) for name, values in members.items() if r.random() < 0.6}

    return make


# (generator, location of the focus, how to build the root from the focus, invariant keys)
Kind = tuple[Callable[[random.Random], Json], str, Callable[[Json], Json], list[str]]
_OWN = lambda node: node  # noqa: E731
ESC_BDL = ["esc-bdl-1", "esc-bdl-2", "esc-bdl-3", "esc-bdl-4", "esc-ack-2", "esc-ack-3"]
KINDS: dict[str, Kind] = {
    "Observation": (
        observation,
        "Observation",
        _OWN,
        ["obs-6", "obs-7", "esc-elig-1", "esc-elig-2", "esc-elig-3", "esc-elig-4", "esc-sb-1", "esc-sb-2", "esc-sb-3"],
    ),
    "Observation.component": (
        lambda r: first_component(observation(r)),
        "Observation.component[0]",
        lambda node: {"resourceType": "Observation", "component": [node]},
        ["esc-elig-5"],
    ),
    "Condition": (condition, "Condition", _OWN, ["con-3", "con-4", "con-5"]),
    "Bundle": (
        bundle,
        "Bundle",
        _OWN,
        ["bdl-1", "bdl-2", "bdl-3", "bdl-4", "bdl-7", "bdl-9", "bdl-10", "bdl-11", "bdl-12", *ESC_BDL],
    ),
    "Bundle.entry": (
        entry,
        "Bundle.entry[0]",
        lambda node: {"resourceType": "Bundle", "entry": [node]},
        ["bdl-5", "bdl-8"],
    ),
    "DomainResource": (domain_resource, "Patient", _OWN, ["dom-2", "dom-3", "dom-4", "dom-5", "dom-6"]),
    "QuestionnaireResponse": (questionnaire_response, "QuestionnaireResponse", _OWN, ["esc-qr-1", "esc-qr-2"]),
    "MessageHeader": (message_header, "MessageHeader", _OWN, ["esc-mh-1"]),
    "QuestionnaireResponse.item": (
        small(
            {"answer": [[{"valueString": "a"}], [], None, {}], "item": [[{"linkId": "1"}], [], [None]], "_answer": [{}]}
        ),
        "QuestionnaireResponse.item[0]",
        lambda node: {"resourceType": "QuestionnaireResponse", "item": [node]},
        ["qrs-1"],
    ),
    "Organization": (
        lambda r: (
            {"resourceType": "Organization"}
            | small(
                {
                    "identifier": [[{"value": "1"}], [], [None]],
                    "name": ["n", "", None],
                    "_name": [{"extension": []}, None],
                }
            )(r)
        ),
        "Organization",
        _OWN,
        ["org-1"],
    ),
    "ContactPoint": (
        small({"value": ["1", "", None, []], "system": ["phone", None], "_system": [{"extension": []}]}),
        "Organization.telecom[0]",
        lambda node: {"resourceType": "Organization", "telecom": [node]},
        ["cpt-2"],
    ),
    **RESOURCE_KINDS,
    "ServiceRequest": (
        lambda r: (
            {"resourceType": "ServiceRequest"}
            | small({"orderDetail": [[{"text": "a"}], [], {}], "code": [{"text": "c"}, {}, None]})(r)
        ),
        "ServiceRequest",
        _OWN,
        ["prr-1"],
    ),
}
#: Decided natively only when they hold.
ONLY_TRUE = RESOURCE_ONLY_TRUE
#: Checked by the hand-written cases of test_invariants.py instead (they need %rootResource set-ups).
ELSEWHERE = {"ele-1", "ext-1", "ref-1"}


def verdicts(kind: str, key: str) -> Iterator[tuple[Json, bool | None, bool | Exception]]:
    """(instance, native verdict or None when deferred, engine verdict or its exception)."""
    make, location, root_of, _ = KINDS[kind]
    expression = expressions()[key]
    compiled = compile_constraint(expression)
    assert compiled is not None
    r = random.Random(f"{kind}/{key}")
    for _ in range(ROUNDS):
        node = make(r)
        root = root_of(node)
        type_path, resource, container = _place(location, root)
        try:
            engine: bool | Exception = compiled(node, type_path, {"resource": resource, "rootResource": container}) != [
                False
            ]
        except Exception as e:  # the engine's own failures: the validator reports "not checked"
            engine = e
        try:
            native: bool | None = NATIVE[expression](node, resource, container)
        except Defer:
            native = None
        yield node, native, engine


CASES = [pytest.param(kind, key, id=key) for kind, (_, _, _, keys) in KINDS.items() for key in keys]


@pytest.mark.parametrize(("kind", "key"), CASES)
def test_native_check_agrees_with_engine_on_variations(kind: str, key: str) -> None:
    seen: set[bool] = {False} if key in ONLY_TRUE else set()
    decided = 0
    for node, native, engine in verdicts(kind, key):
        if native is None:
            continue
        assert not isinstance(engine, Exception), f"the engine raised ({engine}) but the check decided on {node}"
        assert native is engine, f"{key}: native {native}, engine {engine} on {node}"
        seen.add(native)
        decided += 1
    assert decided > ROUNDS // 2, f"{key}: only {decided} of {ROUNDS} variations decided without the engine"
    assert seen == {True, False}, f"{key}: the variations never made it {({True, False} - seen).pop()}"


def test_every_native_expression_is_tested() -> None:
    tested = {expressions()[key] for _, _, _, keys in KINDS.values() for key in [*keys, *ELSEWHERE]}
    by_expression = {e: k for k, e in expressions().items()}
    untested = sorted(by_expression.get(e, e) for e in NATIVE if e not in tested)
    # R4B's form of ele-1 is in the table for R4B profiles; the R4 model has the R4 form.
    assert untested == ["hasValue() or (children().count() > id.count()) or $this is Parameters"]


def test_every_invariant_of_the_project_profiles_is_native() -> None:
    """Each esc-* invariant runs on every referral: the engine would cost more than the rest of validation."""
    own = own_expressions()
    assert len(own) > 10
    assert sorted(k for k, e in own.items() if e not in NATIVE) == []


@pytest.mark.parametrize("path", ["Observation.value", "Observation.component.value", "Condition.abatement"])
def test_choice_types_in_the_engines_order(path: str) -> None:
    """The JSON checks read choice elements from the compact model in fhirpathpy's order."""
    from escape_fhir.validation.fhirpath_ext import R4_PATHS
    from escape_fhir.validation.fhirpath_reads import choice_types

    assert choice_types(path) == R4_PATHS["choiceTypePaths"][path]
