"""Snapshots compiled into a tree of element nodes, once per profile.

A snapshot (``StructureDefinition.snapshot.element``, https://hl7.org/fhir/R4/elementdefinition.html) is a
flat list in which children follow their parent and slices follow the element they slice
(https://hl7.org/fhir/R4/profiling.html#slicing). The walker needs the opposite view: from an element, its
children by the name an instance uses, and the slices of each repeating element. :func:`compile_snapshot`
builds that view once; the walker then only does dictionary look-ups.

Element ids (``Patient.identifier:nhsNumber.system``) give the tree: the parent of an element is its id
without the last segment, and a segment ``name:slice`` is a slice of the parent's child ``name``. Where a
snapshot has no ids they are made from paths and slice names in document order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Binding", "CompiledProfile", "Node", "Slicing", "TypeRef", "compile_snapshot"]

Json = dict[str, Any]

#: FHIRPath system types used in R4 snapshots for ``id``, ``Extension.url`` and primitive ``value``
#: elements (https://hl7.org/fhir/R4/datatypes.html#primitive): checked as the FHIR primitive they carry.
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
_CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
#: Invariants the walker checks itself, on every element (element.html#invs, extensibility.html#Extension).
WALKER_INVARIANTS = frozenset({"ele-1", "ext-1"})


@dataclass(frozen=True, slots=True)
class TypeRef:
    """One allowed type: the type code (core canonicals shortened) and its profiles."""

    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binding:
    """https://hl7.org/fhir/R4/terminologies.html#binding"""

    strength: str
    value_set: str


@dataclass(frozen=True, slots=True)
class Slicing:
    """https://hl7.org/fhir/R4/profiling.html#slicing: discriminators as (type, path), rules, ordered."""

    discriminators: tuple[tuple[str, str], ...]
    rules: str
    ordered: bool


@dataclass(eq=False, slots=True)
class Node:
    """One compiled ElementDefinition with its children by name and its slices."""

    id: str
    path: str
    min: int
    max: int | None  # None: unbounded ("*")
    is_array: bool  # the JSON form repeats: the *base* max is not 1 (https://hl7.org/fhir/R4/json.html)
    types: tuple[TypeRef, ...]
    slice_name: str | None = None
    slicing: Slicing | None = None
    slices: list[Node] = field(default_factory=list)
    children: dict[str, Node] = field(default_factory=dict)
    content_reference: str | None = None
    fixed: tuple[str, Any] | None = None
    pattern: tuple[str, Any] | None = None
    binding: Binding | None = None
    constraints: tuple[Json, ...] = ()
    #: the constraints with a FHIRPath expression, except those the walker checks itself
    invariants: tuple[Json, ...] = ()
    max_length: int | None = None
    is_modifier: bool = False
    #: the element a ``contentReference`` names, resolved when compiled
    target: Node | None = None
    #: per type code, the node whose children an instance of this element may have (filled by the walker)
    scopes: dict[str, Node | None] = field(default_factory=dict)
    #: the invariants split into JSON checks and engine evaluations (filled by checks.invariants)
    plan: Any = None
    _choices: dict[str, tuple[Node, str]] | None = None
    _required: list[Node] | None = None

    #: the last segment of the path, the name an instance uses (``value[x]`` for a choice)
    name: str = field(init=False)
    #: a choice element (``value[x]``), named in instances with its type (``valueQuantity``)
    is_choice: bool = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.path.rpartition(".")[2]
        self.is_choice = self.path.endswith("[x]")

    @property
    def max_text(self) -> str:
        return "*" if self.max is None else str(self.max)

    def required(self) -> list[Node]:
        """The children with ``min`` above 0, or with a slice whose ``min`` is above 0."""
        if self._required is None:
            self._required = [c for c in self.children.values() if c.min > 0 or any(s.min > 0 for s in c.slices)]
        return self._required

    def choices(self) -> dict[str, tuple[Node, str]]:
        """Children that are choice elements, by typed instance name: ``valueQuantity`` -> (value[x], Quantity).

        A type slice of the choice (``value[x]:valueQuantity``) is complete, so it is preferred for its type.
        """
        if self._choices is None:
            found: dict[str, tuple[Node, str]] = {}
            for child in self.children.values():
                if child.is_choice:
                    prefix = child.name[:-3]
                    for t in child.types:
                        found[prefix + t.code[:1].upper() + t.code[1:]] = (child, t.code)
                    for s in child.slices:
                        if len(s.types) == 1:
                            found[prefix + s.types[0].code[:1].upper() + s.types[0].code[1:]] = (s, s.types[0].code)
            self._choices = found
        return self._choices


@dataclass(slots=True)
class CompiledProfile:
    """A compiled snapshot: its root node and every node by id (for contentReference)."""

    url: str
    type: str
    root: Node
    by_id: dict[str, Node]

    def resolve_reference(self, reference: str) -> Node | None:
        """The node a ``contentReference`` names: ``#Questionnaire.item`` or ``<url>#Questionnaire.item``."""
        return self.by_id.get(reference.rpartition("#")[2])


def compile_snapshot(url: str, elements: Sequence[Mapping[str, Any]]) -> CompiledProfile:
    """Compile a snapshot's elements (standard ElementDefinition JSON) into a node tree."""
    by_id: dict[str, Node] = {}
    ids = _element_ids(elements)
    root: Node | None = None
    for el, element_id in zip(elements, ids, strict=True):
        node = _node(el, element_id)
        by_id[element_id] = node
        if root is None:
            root = node
            continue
        parent_id, _, last = element_id.rpartition(".")
        parent = by_id.get(parent_id)
        if parent is None:
            continue  # an element whose parent the snapshot lacks: nothing can reach it
        name, _, slice_name = last.partition(":")
        if not slice_name:
            parent.children[name] = node
        elif "/" not in slice_name and name in parent.children:
            parent.children[name].slices.append(node)
        # Re-slices (``name:a/b``) refine slice ``a``; matching against ``a`` already checks the instance.
    if root is None:
        raise ValueError(f"snapshot of {url} has no elements")
    compiled = CompiledProfile(url, root.path, root, by_id)
    for node in by_id.values():
        if node.content_reference:
            node.target = compiled.resolve_reference(node.content_reference)
    return compiled


def _element_ids(elements: Sequence[Mapping[str, Any]]) -> list[str]:
    """Element ids, made from paths and slice names where the snapshot has none."""
    ids: list[str] = []
    current: dict[str, str] = {}  # path -> id of the element (or slice) most recently seen at that path
    for el in elements:
        path = str(el["path"])
        element_id = el.get("id")
        if not isinstance(element_id, str):
            parent_path, _, last = path.rpartition(".")
            prefix = current.get(parent_path, parent_path)
            element_id = f"{prefix}.{last}" if parent_path else last
            if el.get("sliceName"):
                element_id += f":{el['sliceName']}"
        current[path] = element_id
        ids.append(element_id)
    return ids


def _node(el: Mapping[str, Any], element_id: str) -> Node:
    max_text = str(el.get("max", "*"))
    binding = el.get("binding")
    constraints = tuple(el.get("constraint", ()))
    return Node(
        id=element_id,
        path=str(el["path"]),
        min=int(el.get("min", 0)),
        max=None if max_text == "*" else int(max_text),
        is_array=_json_array(el, max_text),
        types=tuple(_type_ref(t) for t in el.get("type", ())),
        slice_name=el.get("sliceName"),
        slicing=_slicing(el.get("slicing")),
        content_reference=el.get("contentReference"),
        fixed=_prefixed(el, "fixed"),
        pattern=_prefixed(el, "pattern"),
        binding=Binding(binding["strength"], binding["valueSet"])
        if binding and binding.get("valueSet") and binding.get("strength")
        else None,
        constraints=constraints,
        invariants=tuple(
            c for c in constraints if isinstance(c.get("expression"), str) and c.get("key") not in WALKER_INVARIANTS
        ),
        max_length=el.get("maxLength"),
        is_modifier=bool(el.get("isModifier", False)),
    )


def _json_array(el: Mapping[str, Any], max_text: str) -> bool:
    """Whether the element is a JSON array: its *base* max is not 1 (a profile's 0..1 on a list stays a list)."""
    base = el.get("base")
    if isinstance(base, Mapping) and "max" in base:
        return str(base["max"]) not in ("0", "1")
    known = base_is_array(str(el["path"]))
    return known if known is not None else max_text not in ("0", "1")


@functools.cache
def base_is_array(path: str) -> bool | None:
    """Whether a definition path (``ServiceRequest.category``, ``Extension.value[x]``) repeats in base R4.

    Snapshots without ``ElementDefinition.base`` keep only the profile's ``max``, which may be narrowed.
    """
    from escape_fhir.fhir.r4model import model

    m = model()
    names = path.split(".")
    contexts: list[tuple[str, str]] = [(names[0], names[0])]
    found = None
    for name in names[1:]:
        found = next((e for c in contexts for e in m.children(*c) if e.name == name), None)
        if found is None:
            return None
        # A choice's children depend on the type: keep the context of every type it allows.
        typed = [found.choice_name(t.code) for t in found.types] if found.is_choice else [name]
        refs = (m.child(c[0], c[1], t) for c in contexts for t in typed)
        contexts = [r.context for r in refs if r is not None and r.context is not None]
    return found.is_array if found is not None else False


def _type_ref(raw: Mapping[str, Any]) -> TypeRef:
    code = str(raw.get("code", ""))
    code = SYSTEM_TYPES.get(code, code.removeprefix(_CORE_PREFIX))
    return TypeRef(code, tuple(raw.get("profile", ())), tuple(raw.get("targetProfile", ())))


def _slicing(raw: Mapping[str, Any] | None) -> Slicing | None:
    if not raw:
        return None
    discriminators = tuple((str(d["type"]), str(d["path"])) for d in raw.get("discriminator", ()))
    return Slicing(discriminators, str(raw.get("rules", "open")), bool(raw.get("ordered", False)))


def _prefixed(el: Mapping[str, Any], prefix: str) -> tuple[str, Any] | None:
    for key, value in el.items():
        if key.startswith(prefix) and key != prefix:
            return key, value
    return None
