"""Snapshot generation: a profile's differential applied to its base snapshot.

Follows https://hl7.org/fhir/R4/profiling.html#snapshot and the differential rules of
https://hl7.org/fhir/R4/elementdefinition.html#interpretation:

- differential elements are matched to base elements by ``id`` (built from ``path`` and ``sliceName`` when
  a differential has no ids) and merged into them: ``min``/``max``, ``type``, ``fixed[x]``/``pattern[x]``,
  ``slicing``, ``mustSupport`` and the prose replace; a ``binding`` replaces the base binding (keeping its
  value set when the differential only changes the strength); ``constraint`` and ``condition`` are added;
- an element the base has not unfolded (``Patient.identifier:nhsNumber.system``) is reached by unfolding the
  children of its parent from the parent's type (or the type's profile, ``type.profile``, or the
  ``contentReference`` target) under it, ids and paths rewritten;
- a new slice (``id`` ``<element>:<sliceName>``) is a copy of the sliced element as the base defined it,
  with its children, placed after the existing slices; its ``min`` is 0 unless the differential says
  otherwise (the slicing element's cardinality bounds the slices together, profiling.html#slicing);
- choice renames (https://hl7.org/fhir/R4/profiling.html#choice): ``Extension.valueCodeableConcept`` is
  ``Extension.value[x]`` restricted to CodeableConcept; a type slice ``value[x]:valueCodeableConcept`` is a
  slice restricted to that type, on a ``value[x]`` sliced by ``type`` of ``$this`` when no slicing is given;
- an extension slice keeps its ``type.profile`` so the validator can check the extension against the
  extension's own snapshot; the profile is unfolded only when the differential constrains its insides.

Anything that cannot be resolved is skipped and reported as an :class:`~escape_fhir.errors.Issue` located
at the differential element id; generation itself never raises for bad definitions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable

from escape_fhir.errors import Issue
from escape_fhir.fhir.r4model import ElementDef, StructureDef, TypeRef
from escape_fhir.validation.definitions import CORE_SD, Json

__all__ = ["base_elements", "generate"]

Resolver = Callable[[str], list[Json] | None]
FHIRPATH_TYPES = "http://hl7.org/fhirpath/"
# https://hl7.org/fhir/R4/elementdefinition.html#interpretation: keys that add rather than replace.
_ADDITIVE = frozenset({"constraint", "condition", "mapping", "alias", "code", "example"})
_SKIP = frozenset({"id", "path", "sliceName"})
_VALUE_PREFIXES = ("fixed", "pattern")
_EXTENSION_SLICING: Json = {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"}
_TYPE_SLICING: Json = {"discriminator": [{"type": "type", "path": "$this"}], "ordered": False, "rules": "closed"}


# ---- base R4 snapshots from the compact model ---------------------------------------------------------------


def _canonical(name: str) -> str:
    """The model shortens core canonicals to type names; snapshots carry the full URL."""
    return name if ":" in name else CORE_SD + name


def _type_json(t: TypeRef) -> Json:
    code = FHIRPATH_TYPES + t.code if t.code.startswith("System.") else t.code
    out: Json = {"code": code}
    if t.profiles:
        out["profile"] = [_canonical(p) for p in t.profiles]
    if t.target_profiles:
        out["targetProfile"] = [_canonical(p) for p in t.target_profiles]
    return out


def _element_json(e: ElementDef) -> Json:
    out: Json = {"id": e.path, "path": e.path, "min": e.min, "max": e.max}
    if e.slice_name:
        out["sliceName"] = e.slice_name
    if e.types:
        out["type"] = [_type_json(t) for t in e.types]
    if e.content_reference:
        out["contentReference"] = "#" + e.content_reference
    if e.binding:
        out["binding"] = {"strength": e.binding.strength}
        if e.binding.value_set:
            out["binding"]["valueSet"] = e.binding.value_set
    if e.constraints:
        out["constraint"] = [
            {
                "key": c.key,
                "severity": c.severity,
                "human": c.human or c.key,
                "expression": c.expression,
                "source": _canonical(c.source),
            }
            for c in e.constraints
        ]
    if e.condition:
        out["condition"] = list(e.condition)
    if e.slicing is not None:
        out["slicing"] = copy.deepcopy(dict(e.slicing))
    if e.max_length is not None:
        out["maxLength"] = e.max_length
    if e.representation:
        out["representation"] = list(e.representation)
    out["isModifier"] = e.is_modifier
    out["isSummary"] = e.is_summary
    out.update(copy.deepcopy(dict(e.values)))
    return out


def base_elements(sd: StructureDef) -> list[Json]:
    """The snapshot of a base R4 type or resource, built from the compact model, in definition order."""
    return [_element_json(e) for e in sd.elements]


# ---- differential -> snapshot ------------------------------------------------------------------------------


def generate(sd: Json, base: list[Json], resolve: Resolver) -> tuple[list[Json], list[Issue]]:
    """Apply ``sd``'s differential to the ``base`` snapshot; ``resolve(url)`` gives other snapshots."""
    builder = _Builder(sd.get("url", ""), base, resolve)
    diff = sd.get("differential", {}).get("element", [])
    for element in _with_ids(diff, base[0]["path"] if base else ""):
        builder.apply(element)
    return builder.elements, builder.problems


def _with_ids(diff: list[Json], root: str) -> Iterable[Json]:
    """Differential elements with ids; missing ids are built from path and the slices seen so far."""
    open_slices: dict[str, str] = {}  # path -> id of the current slice at that path
    for element in diff:
        if "id" in element:
            yield element
            continue
        path = str(element.get("path", root))
        parent, _, name = path.rpartition(".")
        prefix = open_slices.get(parent, _id_of_path(parent, open_slices)) if parent else ""
        eid = f"{prefix}.{name}" if prefix else name
        if element.get("sliceName"):
            eid += ":" + str(element["sliceName"])
            open_slices[path] = eid
        yield {**element, "id": eid}


def _id_of_path(path: str, open_slices: dict[str, str]) -> str:
    parent, _, name = path.rpartition(".")
    if not parent:
        return open_slices.get(path, path)
    return open_slices.get(path, f"{_id_of_path(parent, open_slices)}.{name}")


def _split_id(eid: str) -> tuple[str, str, str | None]:
    """``A.b:s`` -> (``A``, ``b``, ``s``); ``A.b`` -> (``A``, ``b``, None). Slice names hold no dots."""
    parent, _, last = eid.rpartition(".")
    name, colon, slice_name = last.partition(":")
    return parent, name, slice_name if colon else None


class _Builder:
    def __init__(self, url: str, base: list[Json], resolve: Resolver) -> None:
        self.url = url
        self.resolve = resolve
        self.elements = [copy.deepcopy(e) for e in base]
        self.pristine: dict[str, Json] = {e["id"]: e for e in base}  # the base's own definitions, by id
        self.problems: list[Issue] = []
        self._reindex()

    def _reindex(self) -> None:
        self.pos = {e["id"]: i for i, e in enumerate(self.elements)}

    def problem(self, eid: str, message: str, code: str = "structure") -> None:
        self.problems.append(Issue("error", code, f"{self.url}: {message}", eid))

    # ---- applying one differential element ----------------------------------------------------------------

    def apply(self, diff: Json) -> None:
        eid = str(diff["id"])
        index = self.locate(eid)
        if index is None:
            self.problem(eid, f"element {eid} is not in the base definition and cannot be unfolded")
            return
        _merge(self.elements[index], diff)

    def locate(self, eid: str) -> int | None:
        """The index of the element with this id, unfolding, slicing or renaming choices to reach it."""
        if eid in self.pos:
            return self.pos[eid]
        parent_id, name, slice_name = _split_id(eid)
        if not parent_id:
            return 0 if self.elements and name == self.elements[0]["id"] else None
        parent = self.locate(parent_id)
        if parent is None:
            return None
        if slice_name is not None:
            sliced = self._child(parent, name)
            if sliced is None:
                return None
            existing = self.pos.get(f"{self.elements[sliced]['id']}:{slice_name}")
            return existing if existing is not None else self._slice(sliced, slice_name)
        return self._child(parent, name)

    def _child(self, parent: int, name: str) -> int | None:
        """The child ``name`` of an element, unfolding its type first; choice renames resolved."""
        parent_id = self.elements[parent]["id"]
        if f"{parent_id}.{name}" not in self.pos and not self._unfold(parent):
            return None
        parent_id = self.elements[self.pos[parent_id]]["id"]
        direct = self.pos.get(f"{parent_id}.{name}")
        if direct is not None:
            return direct
        return self._rename_choice(parent_id, name)

    def _rename_choice(self, parent_id: str, name: str) -> int | None:
        """``valueQuantity`` addresses ``value[x]`` restricted to Quantity (profiling.html#choice)."""
        for prefix in _choice_prefixes(name):
            index = self.pos.get(f"{parent_id}.{prefix}[x]")
            if index is None:
                continue
            element = self.elements[index]
            narrowed = _type_named(element, name[len(prefix) :])
            if narrowed is None:
                return None
            element["type"] = [narrowed]
            return index
        return None

    # ---- unfolding ----------------------------------------------------------------------------------------

    def _unfold(self, index: int) -> bool:
        """Insert the children of an element from its type, type profile or content reference."""
        element = self.elements[index]
        eid, path = element["id"], element["path"]
        if any(k.startswith(eid + ".") for k in self.pos):
            return True
        source = self._children_source(element)
        if source is None:
            return False
        root_id, root_path = source[0]["id"], source[0]["path"]
        children = []
        for child in source[1:]:
            new = copy.deepcopy(child)
            new["id"] = eid + child["id"][len(root_id) :]
            new["path"] = path + child["path"][len(root_path) :]
            children.append(new)
            self.pristine.setdefault(new["id"], copy.deepcopy(new))
        self.elements[index + 1 : index + 1] = children
        self._reindex()
        return True

    def _children_source(self, element: Json) -> list[Json] | None:
        """The snapshot whose children an element takes: content reference, type profile or type."""
        ref = element.get("contentReference")
        if ref:
            return self._content_reference(element, str(ref).lstrip("#").split("#")[-1])
        types = _complex_types(element.get("type", []))
        codes = {t.get("code") for t in types}
        if len(codes) != 1:
            self.problem(
                element["id"], f"cannot unfold {element['id']}: it has {len(codes)} complex types", "not-supported"
            )
            return None
        profiles = [p for t in types for p in t.get("profile", [])]
        url = profiles[0] if len(profiles) == 1 else _canonical(str(types[0]["code"]))
        found = self.resolve(url)
        if found is None and url != _canonical(str(types[0]["code"])):
            found = self.resolve(_canonical(str(types[0]["code"])))
        if not found or len(found) < 2:
            self.problem(element["id"], f"cannot unfold {element['id']}: no definition for {url}", "not-found")
            return None
        return found

    def _content_reference(self, element: Json, target: str) -> list[Json] | None:
        """Children of ``#Questionnaire.item`` copied from the base's own definition of that element."""
        subtree = [e for e in self.pristine.values() if e["id"] == target or e["id"].startswith(target + ".")]
        subtree = [e for e in subtree if ":" not in e["id"][len(target) :]]
        if not subtree:
            self.problem(element["id"], f"content reference #{target} not found", "not-found")
            return None
        order = {e["id"]: i for i, e in enumerate(self.elements)}
        subtree.sort(key=lambda e: order.get(e["id"], len(order)))
        element.pop("contentReference", None)
        element["type"] = copy.deepcopy(subtree[0].get("type", [{"code": "BackboneElement"}]))
        return subtree

    # ---- slicing ------------------------------------------------------------------------------------------

    def _slice(self, sliced: int, slice_name: str) -> int:
        """Create the slice ``<sliced>:<slice_name>``: a copy of the sliced element as its base defined it."""
        base = self.elements[sliced]
        base_id = base["id"]
        end = sliced + 1
        while end < len(self.elements) and self.elements[end]["id"].startswith((base_id + ".", base_id + ":")):
            end += 1
        template = [self.pristine.get(base_id, base)] + [
            self.pristine.get(e["id"], e) for e in self.elements[sliced + 1 : end] if e["id"].startswith(base_id + ".")
        ]
        new_id = f"{base_id}:{slice_name}"
        copies = []
        for original in template:
            new = copy.deepcopy(original)
            new["id"] = new_id + original["id"][len(base_id) :]
            copies.append(new)
            self.pristine.setdefault(new["id"], copy.deepcopy(new))
        head = copies[0]
        head["sliceName"] = slice_name
        head["min"] = 0
        head.pop("slicing", None)
        if base["path"].endswith("[x]"):
            self._type_slice(base, head, slice_name)
        elif "slicing" not in base:
            self._default_slicing(base)
        self.elements[end:end] = copies
        self._reindex()
        return end

    def _default_slicing(self, base: Json) -> None:
        """Extensions are sliced by ``url`` without saying so (https://hl7.org/fhir/R4/extensibility.html);
        any other element sliced without a ``slicing`` is a fault of the profile."""
        if base["path"].rpartition(".")[2] in ("extension", "modifierExtension"):
            base["slicing"] = copy.deepcopy(_EXTENSION_SLICING)
        else:
            self.problem(base["id"], f"{base['id']} is sliced without a slicing definition")

    def _type_slice(self, base: Json, head: Json, slice_name: str) -> None:
        """``value[x]:valueQuantity`` is the Quantity type slice of ``value[x]`` (profiling.html#choice)."""
        prefix = base["path"].rpartition(".")[2][:-3]
        base.setdefault("slicing", copy.deepcopy(_TYPE_SLICING))
        if slice_name.startswith(prefix):
            narrowed = _type_named(head, slice_name[len(prefix) :])
            if narrowed is not None:
                head["type"] = [narrowed]


def _complex_types(types: list[Json]) -> list[Json]:
    """The types whose children can be constrained: all of them, or the data types among a choice's types.

    BaRS constrains ``MessageHeader.event[x].system`` on ``event[x]`` of Coding or uri: only Coding has
    children, so the constraint applies to the Coding form (the uri form has nothing to constrain).
    """
    if len(types) < 2:
        return types
    return [t for t in types if str(t.get("code", ""))[:1].isupper()]


def _choice_prefixes(name: str) -> list[str]:
    """Possible ``<prefix>[x]`` names for a typed name: ``valueCodeableConcept`` -> value, valueCodeable..."""
    return [name[:i] for i in range(len(name) - 1, 0, -1) if name[i].isupper()]


def _type_named(element: Json, suffix: str) -> Json | None:
    """The element's type whose code, capitalised, is ``suffix`` (``Quantity``, ``String`` for string)."""
    for t in element.get("type", []):
        code = str(t.get("code", ""))
        if code[:1].upper() + code[1:] == suffix:
            found: Json = copy.deepcopy(t)
            return found
    return None


# ---- merging ----------------------------------------------------------------------------------------------


def _merge(target: Json, diff: Json) -> None:
    """Merge one differential element into its snapshot element (elementdefinition.html#interpretation)."""
    if any(k.startswith(_VALUE_PREFIXES) for k in diff):
        for key in [k for k in target if k.startswith(_VALUE_PREFIXES)]:
            del target[key]
    for key, value in diff.items():
        if key in _SKIP:
            continue
        if key in _ADDITIVE:
            target[key] = _added(target.get(key, []), value, key)
        elif key == "binding":
            target[key] = _binding(target.get("binding"), value)
        else:
            target[key] = copy.deepcopy(value)


def _added(existing: list[object], extra: list[object], key: str) -> list[object]:
    out = list(existing)
    if key == "constraint":
        keys = {c.get("key") for c in extra if isinstance(c, dict)}
        out = [c for c in out if not (isinstance(c, dict) and c.get("key") in keys)]
    return out + [copy.deepcopy(x) for x in extra if x not in out]


def _binding(base: Json | None, diff: Json) -> Json:
    """A differential binding replaces the base one; one without a value set keeps the base's value set."""
    if base is not None and "valueSet" not in diff and "valueSet" in base:
        return {**base, **copy.deepcopy(diff)}
    return copy.deepcopy(diff)


_SLICE_SEGMENT = re.compile(r":[^.]*")


def unsliced(eid: str) -> str:
    """The element id without slice names: ``Patient.identifier:nhsNumber.system`` -> ``...identifier.system``."""
    return _SLICE_SEGMENT.sub("", eid)
