"""Reading FHIR JSON the way fhirpathpy navigates it, for the JSON checks of :mod:`.native`.

fhirpathpy (``engine.evaluators.create_reduce_member_invocation``) reads a member ``name`` of an object as
the value of ``name`` (each item of an array) plus the value of its ``_name`` companion
(https://hl7.org/fhir/R4/json.html#primitive), skipping null and empty arrays; a choice element
``value`` is the first of the element's types present, in the order of its definition (fhirpathpy's
``choiceTypePaths``; here read from the compact R4 model, so that these checks need no FHIRPath engine). These functions
read the same way, and raise :class:`Defer` where an instance has a shape they do not model (a companion
where a value is read, a string where an object belongs, several values where one belongs): the engine
then decides.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from escape_fhir.fhir.r4model import model

__all__ = [
    "Defer",
    "choice",
    "choice_empty",
    "codeable_value",
    "coded",
    "contained",
    "exists",
    "fhirpath_type_is",
    "objects",
    "resolve_one",
    "resource_is",
    "single",
    "string",
]

Json = dict[str, Any]


class Defer(Exception):
    """This instance has a shape the JSON check does not model: the engine decides."""


# --- reading JSON the way fhirpathpy navigates it --------------------------------------------------------------


def _some(value: Any) -> bool:
    """fhirpathpy's ``is_some``: a member is there unless it is null or an empty array."""
    return value is not None and value != []


def exists(node: Any, name: str) -> bool:
    """``name.exists()``: the member or its ``_name`` companion (https://hl7.org/fhir/R4/json.html#primitive)."""
    if not isinstance(node, dict):
        return False
    value = node.get(name)
    return (value is not None and value != []) or _some(node.get("_" + name))


def objects(node: Any, name: str) -> list[Json]:
    """The objects of a complex member (one object or an array of them)."""
    if not isinstance(node, dict) or "_" + name in node:
        raise Defer
    value = node.get(name)
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise Defer


def string(node: Any, name: str) -> str | None:
    """The value of a single string primitive member (None when absent)."""
    if not isinstance(node, dict) or "_" + name in node:
        raise Defer
    value = node.get(name)
    if value is None or isinstance(value, str):
        return value
    raise Defer


def choice(node: Any, path: str, prefix: str) -> tuple[str, Any] | None:
    """The ``prefix[x]`` member the engine reads: the first of the model's types present, with its value."""
    if not isinstance(node, dict):
        raise Defer
    ranks = _choice_ranks(path, prefix)
    best: tuple[int, str] | None = None
    for key, value in node.items():
        found = ranks.get(key)
        if found is not None and value is not None and (best is None or found < best):
            best = found
    if best is None:
        return None
    key = prefix + best[1]
    if "_" + key in node:
        raise Defer
    return best[1], node[key]


@functools.cache
def _choice_ranks(path: str, prefix: str) -> dict[str, tuple[int, str]]:
    """``valueQuantity`` and ``_valueQuantity`` -> (0, ``Quantity``): each type's place in the model's order."""
    ranks: dict[str, tuple[int, str]] = {}
    for i, type_name in enumerate(choice_types(path)):
        ranks[prefix + type_name] = ranks["_" + prefix + type_name] = (i, type_name)
    return ranks


def choice_types(path: str) -> list[str]:
    """The types of a choice element as its instances name them: ``Observation.value`` -> ``Quantity``,
    ``CodeableConcept``, ``String``... in definition order."""
    structure = model().structure(path.partition(".")[0])
    element = structure.element(f"{path}[x]") if structure is not None else None
    if element is None:
        raise ValueError(f"{path}[x] is not a choice element of R4")
    return [t.code[:1].upper() + t.code[1:] for t in element.types]


def choice_empty(node: Any, path: str, prefix: str) -> bool:
    found = choice(node, path, prefix)
    return found is None or not _some(found[1])


def codeable_value(node: Any, path: str) -> Json | None:
    """``value.ofType(CodeableConcept)``: the CodeableConcept value, None when the value has another type."""
    found = choice(node, path, "value")
    if found is None or found[0] != "CodeableConcept":
        return None
    if not isinstance(found[1], dict):
        raise Defer
    return found[1]


def coded(concept: Json | None, system: str, *codes: str) -> bool:
    """``coding.where(system = <system> and code = <one of codes>).exists()`` on a CodeableConcept."""
    if concept is None:
        return False
    return any(string(c, "system") == system and string(c, "code") in codes for c in objects(concept, "coding"))


def resource_is(entry: Json, type_name: str) -> bool | None:
    """``resource is <type>`` on a Bundle entry (None: no resource, an empty result)."""
    resources = objects(entry, "resource")
    if not resources:
        return None
    if len(resources) > 1:
        raise Defer
    return resources[0].get("resourceType") == type_name


def contained(node: Any) -> list[Json]:
    contained = node.get("contained") if isinstance(node, dict) else None
    return [c for c in contained if isinstance(c, dict)] if isinstance(contained, list) else []


def single(node: Any, name: str) -> list[Json]:
    """The object of a 0..1 complex member, as a list of at most one."""
    found = objects(node, name)
    if len(found) > 1:
        raise Defer
    return found


# --- resolve() -------------------------------------------------------------------------------------------------


def resolve_one(ref: Any, resource: Any, root: Any) -> Any:
    """FHIR's ``resolve()`` of one reference as :mod:`.fhirpath_ext` supplies it: ``#id`` in the contained
    resources of ``resource`` (``%resource``), else an entry of ``root`` (``%rootResource``) when that is a Bundle."""
    if not isinstance(ref, str):
        return None
    if ref.startswith("#"):
        contained = resource.get("contained", []) if isinstance(resource, dict) else []
        return next((r for r in contained if r.get("id") == ref[1:]), None)
    if not isinstance(root, dict) or root.get("resourceType") != "Bundle":
        return None
    for entry in root.get("entry", []):
        target = entry.get("resource")
        full_url = entry.get("fullUrl", "")
        if target is not None and (full_url == ref or _matches_type_id(target, full_url, ref)):
            return target
    return None


def _matches_type_id(target: Mapping[str, Any], full_url: str, ref: str) -> bool:
    rtype, _, rid = ref.partition("/")
    return target.get("resourceType") == rtype and target.get("id") == rid and full_url.endswith(ref)


# --- the type fhirpathpy gives a value ----------------------------------------------------------------------------


@functools.cache
def _fhirpath_model() -> Mapping[str, Any]:
    """fhirpathpy's R4 path model; imported only for the rare value whose FHIRPath type a check needs."""
    from fhirpathpy.models import models

    found: Mapping[str, Any] = models["r4"]
    return found


def _type_name(root: Json, keys: Sequence[str | int]) -> str:
    """The type name fhirpathpy gives the value at ``keys`` (member names and list indices) below ``root``.

    As its ``children()`` does (``engine/invocations/navigation.py``, ``engine/nodes.py``): the path of a
    child is the parent's path and the member name, ``Extension`` for ``extension``, through the model's
    ``pathsDefinedElsewhere`` and ``path2Type``; a nested resource restarts at its ``resourceType``; a path
    that still has a dot is a ``BackboneElement``.
    """
    m = _fhirpath_model()
    elsewhere, to_type = m["pathsDefinedElsewhere"], m["path2Type"]
    value: Any = root
    path = str(root.get("resourceType"))
    for key in keys:
        value = value[key]
        if isinstance(key, int):
            continue
        child = "Extension" if key == "extension" else f"{path}.{key}"
        child = elsewhere.get(child, child)
        path = str(to_type.get(child, child))
        if isinstance(value, dict) and "resourceType" in value:
            path = str(value["resourceType"])
    if path.startswith("System."):
        return path
    return path if "." not in path else "BackboneElement"


def fhirpath_type_is(root: Json, keys: Sequence[str | int], wanted: frozenset[str]) -> bool:
    """Whether the value at ``keys`` is of one of the ``wanted`` FHIR types or a subtype (``x.is(T)``)."""
    name: str | None = _type_name(root, keys)
    m = _fhirpath_model()
    while name:
        if name in wanted:
            return True
        name = m["type2Parent"].get(name) or m["path2Type"].get(name)
    return False
