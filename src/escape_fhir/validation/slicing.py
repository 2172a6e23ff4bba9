"""Slicing: which slice each repetition of a sliced element belongs to (https://hl7.org/fhir/R4/profiling.html#slicing).

A repetition belongs to the first slice whose every discriminator it meets
(https://hl7.org/fhir/R4/profiling.html#discriminator):

* ``value`` / ``pattern``: the element at the discriminator path has the slice's ``fixed[x]`` value, contains
  its ``pattern[x]``, or (a value discriminator on a coded element with a required binding) a code in the
  slice's value set; for an extension, ``url`` is the url of the slice's extension definition;
* ``exists``: the element at the path is present when the slice requires it, absent when it forbids it;
* ``type``: the type at the path (a nested resource's ``resourceType``, a choice element's type) is one of
  the slice's types;
* ``profile``: the element at the path conforms to one of the slice's type profiles (it is validated
  against it, and counts when that gives no error).

Then: each slice's cardinality; ``closed`` slicing rejects what matches no slice, ``openAtEnd`` wants it
after the slices; ``ordered`` slicing wants the slices in definition order.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from escape_fhir.fhir.r4model import model
from escape_fhir.validation.checks import contains, same
from escape_fhir.validation.elements import Node

if TYPE_CHECKING:
    from escape_fhir.validation.walker import Walk

__all__ = ["assign"]

Typed = tuple[Any, str | None]  # an instance value and its type where the instance says it
_EXTENSION_CALL = re.compile(r"extension\(\s*'([^']*)'\s*\)|extension\.where\(\s*url\s*=\s*'([^']*)'\s*\)")
_SEGMENTS = re.compile(r"(?:[^.(']|\([^)]*\)|'[^']*')+")


def assign(walk: Walk, node: Node, items: list[Any], loc: str) -> list[Node | None]:
    """The slice of each item (None: no slice), with slicing issues added to ``walk``."""
    assert node.slicing is not None
    rules = node.slicing.rules
    found: list[Node | None] = []
    counts = dict.fromkeys((s.id for s in node.slices), 0)
    order = {s.id: i for i, s in enumerate(node.slices)}
    last, unmatched_seen = -1, False
    for i, item in enumerate(items):
        match = next((s for s in node.slices if item is not None and _matches(walk, node, s, item)), None)
        found.append(match)
        where = f"{loc}[{i}]"
        if match is None:
            unmatched_seen = True
            if rules == "closed" and item is not None:
                message = f"this {node.name} matches no slice of {node.id}, and its slicing is closed"
                walk.add("error", "structure", message, where)
            continue
        counts[match.id] += 1
        if rules == "openAtEnd" and unmatched_seen:
            walk.add("error", "structure", f"slice {match.slice_name!r} must come before unsliced items", where)
        if node.slicing.ordered and order[match.id] < last:
            walk.add("error", "structure", f"slice {match.slice_name!r} is out of order (slicing is ordered)", where)
        last = max(last, order[match.id])
    for s in node.slices:
        _slice_cardinality(walk, s, counts[s.id], loc)
    return found


def _slice_cardinality(walk: Walk, s: Node, count: int, loc: str) -> None:
    if count < s.min:
        message = f"slice {s.slice_name!r}: minimum required = {s.min}, but only found {count}"
        walk.add("error", "required", message, loc)
    if s.max is not None and count > s.max:
        message = f"slice {s.slice_name!r}: maximum allowed = {s.max}, but found {count}"
        walk.add("error", "structure", message, loc)


def _matches(walk: Walk, node: Node, s: Node, item: Any) -> bool:
    assert node.slicing is not None
    if not node.slicing.discriminators:
        return _conforms(walk, item, s)  # no discriminator: the slice's own definition decides
    return all(_meets(walk, s, kind, path, item) for kind, path in node.slicing.discriminators)


def _meets(walk: Walk, s: Node, kind: str, path: str, item: Any) -> bool:
    values = _evaluate(item, path)
    if kind in ("value", "pattern"):
        return _value_meets(walk, s, path, values)
    target = _element_at(s, path)
    if target is None:
        return False
    if kind == "exists":
        return bool(values) if target.min > 0 else not values if target.max == 0 else True
    if kind == "type":
        codes = {t.code for t in target.types}
        return bool(values) and all(_type_of(v, t) in codes for v, t in values)
    if kind == "profile":
        urls = [p for t in target.types for p in t.profiles]
        return bool(values) and all(any(_conforms_to(walk, v, u) for u in urls) for v, _ in values)
    return False


def _value_meets(walk: Walk, s: Node, path: str, values: list[Typed]) -> bool:
    if path == "url" and s.types and s.types[0].code == "Extension" and s.types[0].profiles:
        # An extension slice names its definition; the url is that definition's (extensibility.html).
        wanted = s.types[0].profiles[0].partition("|")[0]
        return any(v == wanted for v, _ in values)
    target = _element_at(s, path)
    if target is None or not values:
        return False
    if target.fixed is not None:
        return any(same(v, target.fixed[1]) for v, _ in values)
    if target.pattern is not None:
        return any(contains(v, target.pattern[1]) for v, _ in values)
    if target.binding is not None:
        return any(_bound(walk, target, v) for v, _ in values)
    return False


def _bound(walk: Walk, target: Node, value: Any) -> bool:
    assert target.binding is not None
    vs = target.binding.value_set
    if isinstance(value, str):
        return walk.definitions.has_code(vs, None, value) is True
    codings = value.get("coding") if isinstance(value, dict) and "coding" in value else [value]
    for c in codings if isinstance(codings, list) else ():
        if (
            isinstance(c, dict)
            and isinstance(c.get("code"), str)
            and walk.definitions.has_code(vs, c.get("system"), c["code"])
        ):
            return True
    return False


# ---- discriminator paths (a restricted FHIRPath: profiling.html#discriminator) -----------------------------


def _evaluate(item: Any, path: str) -> list[Typed]:
    """The values at a discriminator path: names, choice names, ``extension('url')``, ``$this``."""
    current: list[Typed] = [(item, None)]
    for segment in _SEGMENTS.findall(path):
        if segment == "$this":
            continue
        current = [found for value, _ in current for found in _step(value, segment)]
    return current


def _step(value: Any, segment: str) -> list[Typed]:
    if not isinstance(value, dict):
        return []
    call = _EXTENSION_CALL.fullmatch(segment)
    if call is not None:
        url = call.group(1) or call.group(2)
        return [(e, "Extension") for e in value.get("extension") or () if isinstance(e, dict) and e.get("url") == url]
    if segment in value:
        found = value[segment]
        return [(v, None) for v in (found if isinstance(found, list) else [found])]
    # A choice element named without its type (``value``) is whichever ``value<Type>`` is present.
    for key, found in value.items():
        if key.startswith(segment) and key[len(segment) : len(segment) + 1].isupper():
            return [(found, _type_named(key[len(segment) :]))]
    return []


def _type_named(suffix: str) -> str:
    """``Quantity`` -> ``Quantity``; ``DateTime`` -> ``dateTime`` (primitive type names start lower case)."""
    lowered = suffix[0].lower() + suffix[1:]
    return lowered if model().is_primitive(lowered) else suffix


def _element_at(s: Node, path: str) -> Node | None:
    """The slice's definition of the element at a discriminator path (only inside what the snapshot unfolds)."""
    node: Node | None = s
    for segment in _SEGMENTS.findall(path):
        if segment == "$this" or node is None:
            continue
        call = _EXTENSION_CALL.fullmatch(segment)
        if call is not None:
            ext = node.children.get("extension")
            url = call.group(1) or call.group(2)
            node = next((x for x in ext.slices if any(url in t.profiles for t in x.types)), None) if ext else None
            continue
        node = node.children.get(segment) or node.children.get(segment + "[x]")
    return node


def _type_of(value: Any, named: str | None) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])
    return named


# ---- conformance, for profile discriminators ----------------------------------------------------------------


def _conforms_to(walk: Walk, value: Any, url: str) -> bool:
    key = (id(value), url)
    cache = walk.conformance
    if key not in cache:
        profile = walk.validator.compiled(url)
        cache[key] = profile is not None and _conforms(walk, value, profile.root)
    return cache[key]


def _conforms(walk: Walk, value: Any, definition: Node) -> bool:
    """Whether ``value`` meets ``definition`` with no error (checked in a separate, silent walk)."""
    from escape_fhir.validation.walker import Host, Walk

    probe = Walk(walk.validator)
    probe.resources = list(walk.resources)
    probe.containers = list(walk.containers)
    probe.conformance = walk.conformance
    path = definition.path
    if isinstance(value, dict) and value.get("resourceType") == path:
        probe.resources.append(value)
        probe.containers.append(value)
        probe.object(value, definition, path, Host(path, path, path, is_resource=True))
    else:
        probe.item(definition, None, value, None, path, path, Host(path, path, ""))
    return not any(i.severity in ("error", "fatal") for i in probe.issues)
