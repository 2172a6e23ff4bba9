"""FHIRPath evaluation for invariants: ``fhirpathpy`` plus the FHIR functions it lacks or gets wrong.

``fhirpathpy`` 2.x implements the FHIRPath normative functions; FHIR adds its own
(https://hl7.org/fhir/R4/fhirpath.html#functions) and R4's invariants were written against engines laxer
than fhirpathpy in two places. Supplied here, through the engine's invocation table (entries in the same
form as ``fhirpathpy.engine.invocations.invocation_registry``, which the table overrides name by name):

* ``hasValue()`` (FHIR): true when the input is a single primitive with a value. fhirpathpy yields a
  primitive's ``_name`` extension object as a separate item, so such a companion is not counted;
* ``htmlChecks()`` (FHIR, used by ``txt-1``/``txt-2``): the narrative rules of
  https://hl7.org/fhir/R4/narrative.html#rules (allowed elements, no scripting, some content), as
  :func:`escape_fhir.validation.narrative.narrative_ok` says them;
* ``resolve()`` (FHIR): contained resources (``#id``) and, when ``%rootResource`` is a Bundle, its entries
  (by fullUrl, or by ``Type/id`` per https://hl7.org/fhir/R4/bundle.html#references); nothing else;
* ``as(T)`` as a function on a collection filters like ``ofType(T)`` (fhirpathpy raises on more than one
  item; ``dom-3`` applies it to ``descendants()``);
* ``is``/``as`` with a System type name (``answer is Boolean`` in ``que-7``) accept the FHIR primitive of
  that System type (https://hl7.org/fhir/R4/fhirpath.html#types: FHIR primitives map to System types);
* ``matches()`` on a non-string primitive (decimal, integer, boolean) matches its string form, as the HL7
  validator does, instead of raising;
* ``trace()`` never prints (library code does not write to stdout);
* a path may start with the type of a resource focus (``Appointment.status``), see :class:`_Root`.

Evaluation runs the engine's ``do_eval`` on a parsed expression with our own context (the same steps as
``fhirpathpy.apply_parsed_path``) so that our functions receive the engine's nodes (needed for types) and
results are not converted back to JSON, which invariants do not need.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhirpathpy.engine import do_eval
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.engine.invocations import strings as _strings
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import ResourceNode, TypeInfo
from fhirpathpy.engine.util import get_data
from fhirpathpy.models import models

from escape_fhir.validation.fhirpath_reads import resolve_one
from escape_fhir.validation.narrative import narrative_ok

__all__ = ["FUNCTIONS", "R4_PATHS", "evaluate", "known_function"]

#: fhirpathpy's R4 path model (choice types, content references, element types): how ``value`` finds
#: ``valueQuantity`` and what type ``answerBoolean`` has.
R4_PATHS: Mapping[str, Any] = models["r4"]

# FHIR primitive type -> the System type it is (https://hl7.org/fhir/R4/fhirpath.html#types).
_SYSTEM_TYPE = {
    "boolean": "Boolean",
    "integer": "Integer",
    "positiveInt": "Integer",
    "unsignedInt": "Integer",
    "decimal": "Decimal",
    "date": "Date",
    "dateTime": "DateTime",
    "instant": "DateTime",
    "time": "Time",
    **dict.fromkeys(
        ("string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid", "base64Binary"), "String"
    ),
}


def _node_type(item: Any) -> TypeInfo:
    TypeInfo.model = R4_PATHS  # fhirpathpy keeps the model on the class; set it as its own is() does
    return TypeInfo.from_value(item)


def _is(item: Any, type_info: TypeInfo) -> bool:
    own = _node_type(item)
    if own.is_(type_info):
        return True
    system_name = _SYSTEM_TYPE.get(own.name) if own.namespace == TypeInfo.FHIR else None
    return type_info.namespace in (None, TypeInfo.System) and system_name == type_info.name


def _is_fn(ctx: Any, coll: list[Any], type_info: TypeInfo) -> list[bool]:
    if not coll:
        return []
    if len(coll) > 1:
        raise ValueError("'is' needs a single item on its left")
    return [_is(coll[0], type_info)]


def _as_op(ctx: Any, coll: list[Any], type_info: TypeInfo) -> list[Any]:
    if len(coll) > 1:
        raise ValueError("'as' needs a single item on its left")
    return [x for x in coll if _is(x, type_info)]


def _as_fn(ctx: Any, coll: list[Any], type_info: TypeInfo) -> list[Any]:
    return [x for x in coll if _is(x, type_info)]


def _is_extension_companion(data: Any) -> bool:
    """The ``_name`` object of a primitive (https://hl7.org/fhir/R4/json.html#primitive): id/extension only."""
    return isinstance(data, dict) and not set(data) - {"id", "extension"}


def _has_value(ctx: Any, coll: list[Any]) -> bool:
    values = [d for d in map(get_data, coll) if not _is_extension_companion(d)]
    return len(values) == 1 and values[0] is not None and not isinstance(values[0], dict | list)


def _html_checks(ctx: Any, coll: list[Any]) -> list[bool]:
    values = [get_data(x) for x in coll]
    if len(values) != 1 or not isinstance(values[0], str):
        return []
    return [narrative_ok(values[0])]


def _matches(ctx: Any, coll: list[Any], regex: str) -> Any:
    data = [get_data(x) for x in coll]
    if len(data) == 1 and isinstance(data[0], bool | int | Decimal):
        data = [str(data[0]).lower() if isinstance(data[0], bool) else str(data[0])]
    return _strings.matches(ctx, data, regex)


def _trace(ctx: Any, coll: list[Any], label: str = "", projection: Any = None) -> list[Any]:
    return coll


def _resolve(ctx: Any, coll: list[Any]) -> list[ResourceNode]:
    variables = ctx["vars"]
    found = []
    for item in map(get_data, coll):
        ref = item.get("reference") if isinstance(item, dict) else item
        target = resolve_one(ref, variables.get("resource"), variables.get("rootResource")) if ref else None
        if target is not None:
            found.append(ResourceNode.create_node(target))
    return found


FUNCTIONS: dict[str, dict[str, Any]] = {
    "hasValue": {"fn": _has_value},
    "htmlChecks": {"fn": _html_checks},
    "resolve": {"fn": _resolve},
    "is": {"fn": _is_fn, "arity": {1: ["TypeSpecifier"]}},
    "as": {"fn": _as_fn, "arity": {1: ["TypeSpecifier"]}},
    "isOp": {"fn": _is_fn, "arity": {2: ["Any", "TypeSpecifier"]}},
    "asOp": {"fn": _as_op, "arity": {2: ["Any", "TypeSpecifier"]}},
    "matches": {"fn": _matches, "arity": {1: ["String"]}, "nullable_input": True},
    "trace": {"fn": _trace, "arity": {0: [], 1: ["String"], 2: ["String", "Any"]}},
}


def known_function(name: str) -> bool:
    """Whether a function name can be evaluated (fhirpathpy's or one of ours)."""
    return name in FUNCTIONS or name in invocation_registry


class _Root(ResourceNode):  # type: ignore[misc]
    """The focus node. A path may start with the type name of a resource focus (``Appointment.status`` on an
    Appointment, https://hl7.org/fhirpath/N1/#path-selection): fhirpathpy tells that by reading
    ``node["resourceType"]``, which its own nodes do not allow (the name was then read as a member, so
    ``app-4`` could never fail). A TypeError, as before, for anything but a resource."""

    def __getitem__(self, key: str) -> Any:
        if isinstance(self.data, dict) and "resourceType" in self.data:
            return self.data[key]
        raise TypeError("not a resource")


def evaluate(parsed: Mapping[str, Any], node: Any, type_path: str | None, variables: Mapping[str, Any]) -> list[Any]:
    """Evaluate a parsed expression (``fhirpathpy.parser.parse``) on ``node``, typed by ``type_path``.

    ``type_path`` is fhirpathpy's name for where the node sits (``"Extension"``, ``"HumanName"``,
    ``"Questionnaire.item.enableWhen"``); a resource is typed by its ``resourceType`` anyway.
    """
    constants.reset()  # now()/today() are fixed per evaluation
    root = [_Root(node, type_path)]
    ctx = {
        "dataRoot": root,
        "vars": {"ucum": "http://unitsofmeasure.org", "context": node, **variables},
        "model": R4_PATHS,
        "userInvocationTable": FUNCTIONS,
    }
    result: list[Any] = do_eval(ctx, root, parsed["children"][0])
    return result
