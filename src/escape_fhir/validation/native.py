"""Frequent FHIRPath invariants checked directly on the JSON, saying exactly what the engine says.

The FHIRPath interpreter costs about 0.1 ms per evaluation, more than the rest of the validation of an
element; the invariants below run on nearly every node (``ele-1``, ``ext-1``, ``ref-1``, ``dom-*``) or on
every resource of a referral message (the Bundle, Observation, Condition, QuestionnaireResponse rules of
R4 and the project's ``esc-*`` rules in :mod:`escape_fhir.fhir.conformance`). :data:`NATIVE` maps the exact
expression text to a function of ``(node, %resource, %rootResource)`` that returns the verdict: False when
the engine's result would be ``[False]`` (the constraint is broken), True otherwise. A changed expression
is no longer in the table and runs in the engine.

The functions follow fhirpathpy, the engine whose verdict they replace, reading the JSON as it does
(:mod:`.fhirpath_reads`), and evaluate what it evaluates: both sides of ``or``/``implies`` are evaluated,
so an operand that makes the engine raise does so whatever the other says. Where an instance has a shape
a function does not model, it raises :class:`Defer` and the engine decides.
tests/validation/test_native.py compares every entry with the engine on generated variations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from escape_fhir.fhir import codes
from escape_fhir.fhir.conformance._elements import canonical_is
from escape_fhir.validation.fhirpath_reads import (
    Defer,
    choice,
    choice_empty,
    codeable_value,
    coded,
    contained,
    exists,
    fhirpath_type_is,
    objects,
    resource_is,
    single,
    string,
)
from escape_fhir.validation.native_resources import RESOURCE_NATIVE, RESOURCE_NEEDS_PLACE

__all__ = ["NATIVE", "NEEDS_PLACE", "Defer", "Native"]

Json = dict[str, Any]
#: (focus, %resource, %rootResource) -> False when the constraint is broken; raises Defer to ask the engine.
Native = Callable[[Any, Any, Any], bool]


# --- base element, resource and Bundle invariants (element.html, domainresource.html, bundle.html) --------------


def _ele_1(node: Any, resource: Any, container: Any) -> bool:
    """``hasValue() or (children().count() > id.count())``: a primitive with a value, or a child besides id."""
    if isinstance(node, list):
        return all(_ele_1(item, resource, container) for item in node)
    if isinstance(node, dict):
        return any(name != "id" for name in node)
    return node is not None


def _ext_1(node: Any, resource: Any, container: Any) -> bool:
    """``extension.exists() != value.exists()``: a value or sub-extensions, never both, never neither."""
    has_value = isinstance(node, dict) and any(
        k.lstrip("_").startswith("value") and len(k.lstrip("_")) > 5 for k in node
    )
    return exists(node, "extension") != has_value


def _ref_1(node: Any, resource: Any, container: Any) -> bool:
    """``reference.startsWith('#').not() or (reference.substring(1) in %rootResource.contained.id)``.

    A reference that is not a string, or ``#`` alone (``substring(1)`` is empty), makes the expression
    empty, which passes."""
    ref = node.get("reference") if isinstance(node, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#") or ref == "#":
        return True
    return any(c.get("id") == ref[1:] for c in contained(container))


def _meta_empty(node: Any, *names: str) -> bool:
    return not any(exists(c.get("meta"), name) for c in contained(node) for name in names)


def _dom_3(node: Any, resource: Any, container: Any) -> bool:
    """``contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical)
    | ...as(uri) | ...as(url))) or descendants().where(reference = '#').exists() or descendants().where(
    as(canonical) = '#').exists() ...).not()).empty()``: every contained resource is referred to from the
    resource (a ``reference``, or a canonical, uri or url value, ``#id``), or itself refers to its container
    (``#``).

    One pass over the resource finds every string that is ``#`` or ``#id`` of a contained resource; only such
    a string outside a ``reference`` member needs its FHIRPath type (rare: a canonical such as
    ``QuestionnaireResponse.questionnaire``)."""
    if not isinstance(node, dict) or "_contained" in node:
        raise Defer
    inner = node.get("contained")
    if inner is None or inner == []:
        return True
    if not isinstance(inner, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in inner):
        raise Defer  # a contained resource without a string id: '#' + id is the engine's to say
    if any("_id" in c for c in inner):
        raise Defer
    wanted = {"#" + c["id"] for c in inner} | {"#"}
    found: list[tuple[str, list[str | int], int]] = []  # (value, keys from the resource, depth of its object)
    _strings_in(node, [], wanted, found)
    by_reference = {value for value, _, depth in found if depth > 0}  # %resource.descendants().reference
    for index, inner_resource in enumerate(inner):
        target = "#" + inner_resource["id"]
        if target in by_reference or _typed(node, found, target, _URI_TYPES):
            continue
        below = [(v, k, d) for v, k, d in found if k[:2] == ["contained", index] and len(k) > 2 and v == "#"]
        if any(d > 2 and isinstance(k[-1], str) for _, k, d in below):  # descendants().where(reference = '#')
            continue
        if _typed(node, below, "#", _CANONICAL):  # descendants().where(as(canonical) = '#')
            continue
        return False
    return True


_URI_TYPES = frozenset({"canonical", "uri", "url"})
_CANONICAL = frozenset({"canonical"})


def _strings_in(
    value: Any, keys: list[str | int], wanted: set[str], found: list[tuple[str, list[str | int], int]]
) -> None:
    """Every string of ``wanted`` in ``value``, with its keys and, when it is (an item of) a ``reference``
    member, how many keys lead to the object that has that member (-1 otherwise)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _strings_in(item, [*keys, key], wanted, found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _strings_in(item, [*keys, i], wanted, found)
    elif isinstance(value, str) and value in wanted:
        member = len(keys) - 1 if isinstance(keys[-1], str) else len(keys) - 2
        found.append((value, keys, member if member >= 0 and keys[member] == "reference" else -1))


def _typed(root: Json, found: list[tuple[str, list[str | int], int]], target: str, types: frozenset[str]) -> bool:
    """Whether ``target`` is found as a value of one of ``types`` (``descendants().as(T)``)."""
    return any(v == target and fhirpath_type_is(root, k, types) for v, k, _ in found)


def _entries(node: Any) -> list[Any]:
    entries = node.get("entry") if isinstance(node, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry_part(part: str, kinds: tuple[str, ...]) -> Native:
    """``bdl-3``/``bdl-4``: ``entry.all(<part>.exists() = (%resource.type = <kind> or ...))``."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        if not isinstance(node, dict) or "type" not in node:  # the comparison is empty: all() is false
            return not _entries(node)
        wanted = node["type"] in kinds
        return all(exists(entry, part) == wanted for entry in _entries(node))

    return check


def _bdl_7(node: Any, resource: Any, container: Any) -> bool:
    """``(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()``
    (``&`` treats an empty operand as ''); without a type the ``or`` is empty or true, both passing. The
    engine evaluates both sides, so the keys are read (and odd shapes deferred) whatever the type."""
    keys = [
        url + "".join(string(m, "versionId") or "" for r in single(e, "resource") for m in single(r, "meta"))
        for e in objects(node, "entry")
        if (url := string(e, "fullUrl")) is not None
    ]
    return string(node, "type") in ("history", None) or len(keys) == len(set(keys))


def _bdl_1(node: Any, resource: Any, container: Any) -> bool:
    """``total.empty() or (type = 'searchset') or (type = 'history')``: without a type, empty."""
    return not exists(node, "total") or string(node, "type") in ("searchset", "history", None)


def _bdl_2(node: Any, resource: Any, container: Any) -> bool:
    """``entry.search.empty() or (type = 'searchset')``."""
    kind = string(node, "type")
    return not any(exists(e, "search") for e in objects(node, "entry")) or kind in ("searchset", None)


def _type_implies(kind: str, check: Callable[[Json], bool | None]) -> Native:
    """``type = '<kind>' implies <check>``: an empty or true ``check`` passes."""

    def native(node: Any, resource: Any, container: Any) -> bool:
        return string(node, "type") != kind or check(node) is not False

    return native


def _bdl_9(node: Json) -> bool:
    """``identifier.system.exists() and identifier.value.exists()``."""
    identifiers = objects(node, "identifier")
    return any(exists(i, "system") for i in identifiers) and any(exists(i, "value") for i in identifiers)


def _first_entry_is(type_name: str) -> Callable[[Json], bool | None]:
    """``entry.first().resource.is(<type>)``."""

    def check(node: Json) -> bool | None:
        entries = objects(node, "entry")
        return resource_is(entries[0], type_name) if entries else None

    return check


# --- Observation, Condition, Organization, ContactPoint, ServiceRequest, QuestionnaireResponse -------------------

_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CONDITION_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _obs_7(node: Any, resource: Any, container: Any) -> bool:
    """``value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()``:
    no component has a coding of the Observation's own code (fhirpathpy's intersect: equal JSON)."""
    if choice_empty(node, "Observation.value", "value"):
        return True
    own = [c for code in objects(resource, "code") for c in objects(code, "coding")]
    return not any(
        c in own
        for comp in objects(node, "component")
        for code in objects(comp, "code")
        for c in objects(code, "coding")
    )


def _con_3(node: Any, resource: Any, container: Any) -> bool:
    """``clinicalStatus.exists() or verificationStatus.coding.where(... 'entered-in-error').exists() or
    category.select($this='problem-list-item').empty()`` (a CodeableConcept is never equal to a string, so the
    last part is ``category.empty()``)."""
    entered_in_error = any(
        coded(v, _CONDITION_VER_STATUS, "entered-in-error") for v in objects(node, "verificationStatus")
    )
    return exists(node, "clinicalStatus") or entered_in_error or not objects(node, "category")


def _con_4(node: Any, resource: Any, container: Any) -> bool:
    """``abatement.empty() or clinicalStatus.coding.where(system=... and (code='resolved' or ...)).exists()``."""
    if choice_empty(node, "Condition.abatement", "abatement"):
        return True
    return any(
        coded(s, _CONDITION_CLINICAL, "resolved", "remission", "inactive") for s in objects(node, "clinicalStatus")
    )


def _con_5(node: Any, resource: Any, container: Any) -> bool:
    """``verificationStatus.coding.where(... code='entered-in-error').empty() or clinicalStatus.empty()``."""
    statuses = objects(node, "verificationStatus")
    return not any(coded(v, _CONDITION_VER_STATUS, "entered-in-error") for v in statuses) or not exists(
        node, "clinicalStatus"
    )


def _either_or(first: str, second: str) -> Native:
    """``<first>.empty() or <second>.exists()``."""
    return lambda node, resource, container: not exists(node, first) or exists(node, second)


# --- the project's own invariants (escape_fhir.fhir.conformance) --------------------------------------------------

_DECISION = "https://w3id.org/escape-fhir/CodeSystem/eligibility-decision"
_OUTCOME = "https://w3id.org/escape-fhir/CodeSystem/eligibility-criterion-outcome"
_CRITERION = "https://w3id.org/escape-fhir/CodeSystem/eligibility-criterion"
_QUESTIONNAIRE = "https://w3id.org/escape-fhir/Questionnaire/"
_LOINC = "http://loinc.org"


def _decision(node: Any, code: str) -> bool:
    """``value.ofType(CodeableConcept).coding.where(system = <decision> and code = <code>).exists()``."""
    return coded(codeable_value(node, "Observation.value"), _DECISION, code)


def _outcome(component: Json, code: str) -> bool:
    return coded(codeable_value(component, "Observation.component.value"), _OUTCOME, code)


def _esc_elig_1(node: Any, resource: Any, container: Any) -> bool:
    """The decision is not-eligible exactly when some criterion's outcome is not-met."""
    return _decision(node, "not-eligible") == any(_outcome(c, "not-met") for c in objects(node, "component"))


def _esc_elig_2(node: Any, resource: Any, container: Any) -> bool:
    """The decision is eligible only when every criterion's outcome is met (``component.all(...)``)."""
    return not _decision(node, "eligible") or all(_outcome(c, "met") for c in objects(node, "component"))


def _esc_elig_3(node: Any, resource: Any, container: Any) -> bool:
    """The decision is needs-review only when some criterion's outcome is unknown."""
    return not _decision(node, "needs-review") or any(_outcome(c, "unknown") for c in objects(node, "component"))


def _esc_elig_4(node: Any, resource: Any, container: Any) -> bool:
    """``component.code.coding.where(system = <criterion>).code.isDistinct()``."""
    found = [
        code
        for comp in objects(node, "component")
        for concept in objects(comp, "code")
        for c in objects(concept, "coding")
        if string(c, "system") == _CRITERION and (code := string(c, "code")) is not None
    ]
    return len(found) == len(set(found))


def _esc_elig_5(node: Any, resource: Any, container: Any) -> bool:
    """``value.ofType(CodeableConcept).text.exists()`` on a component."""
    return exists(codeable_value(node, "Observation.component.value"), "text")


def _esc_bdl_1(node: Any, resource: Any, container: Any) -> bool:
    """``entry.resource.all(meta.lastUpdated.exists())``."""
    return all(
        any(exists(m, "lastUpdated") for m in objects(r, "meta"))
        for e in objects(node, "entry")
        for r in objects(e, "resource")
    )


def _esc_bdl_2(node: Any, resource: Any, container: Any) -> bool:
    """``entry.all(fullUrl.startsWith('urn:uuid:'))``: an entry without fullUrl fails (empty is not true)."""
    return all((string(e, "fullUrl") or "").startswith("urn:uuid:") for e in objects(node, "entry"))


def _service_request_entries(node: Any) -> list[Json]:
    """``entry.where(resource is ServiceRequest)``."""
    return [e for e in objects(node, "entry") if resource_is(e, "ServiceRequest")]


def _esc_bdl_3(node: Any, resource: Any, container: Any) -> bool:
    """``entry.where(resource is ServiceRequest).count() = 1``."""
    return len(_service_request_entries(node)) == 1


def _esc_bdl_4(node: Any, resource: Any, container: Any) -> bool:
    """``entry.first().resource.focus.reference in entry.where(resource is ServiceRequest).fullUrl``: empty
    (passing) without a focus reference; the engine refuses more than one."""
    entries = objects(node, "entry")
    first = objects(entries[0], "resource") if entries else []
    focus = [r for res in first for f in objects(res, "focus") if (r := string(f, "reference")) is not None]
    if len(focus) > 1 or len(first) > 1:
        raise Defer
    if not focus:
        return True
    return any(string(e, "fullUrl") == focus[0] for e in _service_request_entries(node))


def _esc_ack_2(node: Any, resource: Any, container: Any) -> bool:
    """``entry.first().resource.focus.reference.all($this in %resource.entry.where(resource is ServiceRequest)
    .select(fullUrl | (resource.resourceType + '/' + resource.id)))``: on the Bundle, %resource is the node."""
    entries = objects(node, "entry")
    first = objects(entries[0], "resource") if entries else []
    if len(first) > 1:
        raise Defer
    focus = [r for res in first for f in objects(res, "focus") if (r := string(f, "reference")) is not None]
    targets: set[str] = set()
    for e in _service_request_entries(node):
        url = string(e, "fullUrl")
        targets |= {url} if url is not None else set()
        (found,) = objects(e, "resource")
        ident = string(found, "id")
        targets |= {f"ServiceRequest/{ident}"} if ident is not None else set()
    return all(r in targets for r in focus)


def _esc_ack_3(node: Any, resource: Any, container: Any) -> bool:
    """``entry.where(resource is Encounter and (resource.status = 'planned' or resource.status = 'cancelled')
    and resource.identifier.exists()).exists()``."""
    for e in objects(node, "entry"):
        if not resource_is(e, "Encounter"):
            continue
        (found,) = objects(e, "resource")
        if string(found, "status") in ("planned", "cancelled") and exists(found, "identifier"):
            return True
    return False


def _questionnaire_is(*names: str) -> Native:
    """``(questionnaire = <url> or questionnaire.startsWith('<url>|')) or ...`` (conformance.canonical_is)."""
    return _canonical_in("questionnaire", *(_QUESTIONNAIRE + name for name in names))


def _canonical_in(element: str, *urls: str) -> Native:
    """``(<element> = <url> or <element>.startsWith('<url>|')) or ...`` (conformance.canonical_is); an absent
    element gives empty, which does not fail the invariant."""
    versioned = tuple(f"{u}|" for u in urls)

    def check(node: Any, resource: Any, container: Any) -> bool:
        url = string(node, element)
        return url is None or url in urls or url.startswith(versioned)

    return check


def _score(code: str, low: int, high: int) -> Native:
    """``code.coding.where(system = LOINC and code = <code>).exists() implies
    value.ofType(integer).where($this >= <low> and $this <= <high>).exists()``."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        found = choice(node, "Observation.value", "value")  # both sides are evaluated: a bad value raises
        if found is not None and found[0] == "Integer" and type(found[1]) is not int:
            raise Defer
        in_range = found is not None and found[0] == "Integer" and low <= found[1] <= high
        return in_range or not any(coded(c, _LOINC, code) for c in objects(node, "code"))

    return check


def _risk_is_coded(node: Any, resource: Any, container: Any) -> bool:
    """``code.coding.where(system = LOINC and code = '91352-5').exists() implies value.ofType(CodeableConcept).exists()``."""
    if not any(coded(c, _LOINC, "91352-5") for c in objects(node, "code")):
        return True
    return codeable_value(node, "Observation.value") is not None


def _coded_where(system: str, code: str) -> str:
    return f"coding.where(system = '{system}' and code = '{code}').exists()"


def _canonical_is(*names: str) -> str:
    options = [
        f"questionnaire = '{_QUESTIONNAIRE}{n}' or questionnaire.startsWith('{_QUESTIONNAIRE}{n}|')" for n in names
    ]
    return " or ".join(f"({o})" for o in options) if len(options) > 1 else options[0]


_ELIGIBILITY_DECISION = "value.ofType(CodeableConcept)." + _coded_where(_DECISION, "{}")
_COMPONENT_OUTCOME = "value.ofType(CodeableConcept)." + _coded_where(_OUTCOME, "{}")
_SCORE = (
    "code." + _coded_where(_LOINC, "{}") + " implies value.ofType(integer).where($this >= 0 and $this <= {}).exists()"
)

#: Exact expression text -> the same check on the JSON.
NATIVE: dict[str, Native] = {
    # element.html#invs, extensibility.html#Extension, references.html#contained
    "hasValue() or (children().count() > id.count())": _ele_1,
    "hasValue() or (children().count() > id.count()) or $this is Parameters": _ele_1,
    "extension.exists() != value.exists()": _ext_1,
    "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))": _ref_1,
    # domainresource.html#invs
    "contained.contained.empty()": lambda node, resource, container: (
        not any(exists(c, "contained") for c in contained(node))
    ),
    "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()": lambda node, r, c: _meta_empty(
        node, "versionId", "lastUpdated"
    ),
    "contained.meta.security.empty()": lambda node, resource, container: _meta_empty(node, "security"),
    "text.`div`.exists()": lambda node, resource, container: isinstance(node, dict) and exists(node.get("text"), "div"),
    "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | "
    "%resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#')"
    ".exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#')"
    ".exists()).not()).trace('unmatched', id).empty()": _dom_3,
    # bundle.html#invs
    "total.empty() or (type = 'searchset') or (type = 'history')": _bdl_1,
    "entry.search.empty() or (type = 'searchset')": _bdl_2,
    "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or %resource.type = "
    "'history'))": _entry_part("request", ("batch", "transaction", "history")),
    "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = 'transaction-response' or "
    "%resource.type = 'history'))": _entry_part("response", ("batch-response", "transaction-response", "history")),
    "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()": _bdl_7,
    "resource.exists() or request.exists() or response.exists()": lambda node, resource, container: any(
        exists(node, name) for name in ("resource", "request", "response")
    ),
    "fullUrl.exists() implies fullUrl.contains('/_history/').not()": lambda node, resource, container: (
        "/_history/" not in (string(node, "fullUrl") or "")
    ),
    "type = 'document' implies (identifier.system.exists() and identifier.value.exists())": _type_implies(
        "document", _bdl_9
    ),
    "type = 'document' implies (timestamp.hasValue())": _type_implies(
        "document", lambda n: string(n, "timestamp") is not None
    ),
    "type = 'document' implies entry.first().resource.is(Composition)": _type_implies(
        "document", _first_entry_is("Composition")
    ),
    "type = 'message' implies entry.first().resource.is(MessageHeader)": _type_implies(
        "message", _first_entry_is("MessageHeader")
    ),
    # observation.html, condition.html, organization.html, datatypes.html#ContactPoint, servicerequest.html,
    # questionnaireresponse.html
    "dataAbsentReason.empty() or value.empty()": lambda node, resource, container: (
        not exists(node, "dataAbsentReason") or choice_empty(node, "Observation.value", "value")
    ),
    "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()": _obs_7,
    "clinicalStatus.exists() or verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/"
    "condition-ver-status' and code = 'entered-in-error').exists() or category.select($this='problem-list-item')"
    ".empty()": _con_3,
    "abatement.empty() or clinicalStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-clinical'"
    " and (code='resolved' or code='remission' or code='inactive')).exists()": _con_4,
    "verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and "
    "code='entered-in-error').empty() or clinicalStatus.empty()": _con_5,
    "(identifier.count() + name.count()) > 0": lambda node, resource, container: (
        exists(node, "identifier") or exists(node, "name")
    ),
    "value.empty() or system.exists()": _either_or("value", "system"),
    "orderDetail.empty() or code.exists()": _either_or("orderDetail", "code"),
    "(answer.exists() and item.exists()).not()": lambda node, resource, container: (
        not (exists(node, "answer") and exists(node, "item"))
    ),
    # escape_fhir.fhir.conformance: EscapePainReferralMessage and -Acknowledgement, eligibility, questionnaire responses, STarT Back
    "entry.resource.all(meta.lastUpdated.exists())": _esc_bdl_1,
    "entry.all(fullUrl.startsWith('urn:uuid:'))": _esc_bdl_2,
    "entry.where(resource is ServiceRequest).count() = 1": _esc_bdl_3,
    "entry.first().resource.focus.reference in entry.where(resource is ServiceRequest).fullUrl": _esc_bdl_4,
    "entry.first().resource.focus.reference.all($this in %resource.entry.where(resource is ServiceRequest)"
    ".select(fullUrl | (resource.resourceType + '/' + resource.id)))": _esc_ack_2,
    "entry.where(resource is Encounter and (resource.status = 'planned' or resource.status = 'cancelled')"
    " and resource.identifier.exists()).exists()": _esc_ack_3,
    f"{_ELIGIBILITY_DECISION.format('not-eligible')} = component.{_COMPONENT_OUTCOME.format('not-met')}": _esc_elig_1,
    f"{_ELIGIBILITY_DECISION.format('eligible')} implies component.all({_COMPONENT_OUTCOME.format('met')})": _esc_elig_2,
    f"{_ELIGIBILITY_DECISION.format('needs-review')} implies component.{_COMPONENT_OUTCOME.format('unknown')}": _esc_elig_3,
    f"component.code.coding.where(system = '{_CRITERION}').code.isDistinct()": _esc_elig_4,
    "value.ofType(CodeableConcept).text.exists()": _esc_elig_5,
    _canonical_is("knee-hip-eligibility", "back-eligibility"): _questionnaire_is(
        "knee-hip-eligibility", "back-eligibility"
    ),
    _canonical_is("startback"): _questionnaire_is("startback"),
    canonical_is("definition", codes.BARS_REFERRAL_DEFINITION, codes.BARS_CANCELLED_DEFINITION): _canonical_in(
        "definition", codes.BARS_REFERRAL_DEFINITION, codes.BARS_CANCELLED_DEFINITION
    ),
    _SCORE.format("91351-7", 9): _score("91351-7", 0, 9),
    _SCORE.format("91350-9", 5): _score("91350-9", 0, 5),
    "code." + _coded_where(_LOINC, "91352-5") + " implies value.ofType(CodeableConcept).exists()": _risk_is_coded,
    # the resources and data types of referral Bundles, UK Core and BaRS examples (native_resources.py)
    **RESOURCE_NATIVE,
}

#: The functions that read ``%resource`` or ``%rootResource`` (found from the location when not given).
NEEDS_PLACE = frozenset({_ref_1, _obs_7, *RESOURCE_NEEDS_PLACE})
