"""Walking one instance against compiled snapshots and gathering every issue.

For each element of the instance the walker finds its definition (a child of the current node, a choice
type ``valueQuantity`` of ``value[x]``, a primitive's ``_name`` companion, a slice, an extension's own
definition, the target of a ``contentReference``, or the children of the element's type) and checks:
JSON shape (https://hl7.org/fhir/R4/json.html), unknown elements, cardinality, types, primitive formats
(the regexes of https://hl7.org/fhir/R4/datatypes.html), fixed and pattern values, slicing, extensions,
bindings and invariants. Nested resources (``Bundle.entry.resource``, ``contained``, ``Parameters``) are
validated against their own type and ``meta.profile``. Locations are FHIRPath with indices, rooted at the
resource type (``Bundle.entry[3].resource.item[0].answer[0]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from escape_fhir.errors import Issue
from escape_fhir.fhir.r4model import PrimitiveInfo, model
from escape_fhir.validation import bindings, checks, extensions, slicing
from escape_fhir.validation.elements import CompiledProfile, Node

if TYPE_CHECKING:
    from escape_fhir.validation.api import Validator

__all__ = ["Host", "Walk"]

Json = dict[str, Any]
EXTENSION_NAMES = frozenset({"extension", "modifierExtension"})
_RESOURCE_CODES = frozenset({"Resource", "DomainResource"})
_INT32 = (-2147483648, 2147483647)
_PRIMITIVES: dict[str, PrimitiveInfo] = {}
_MISSING = object()


class Host(NamedTuple):
    """The element an extension sits on, for its context (https://hl7.org/fhir/R4/extensibility.html#context).

    ``def_path`` is the path from the resource (``Patient.name.given``), ``path`` the definition path of the
    element (``HumanName.given``), ``type_code`` its type, ``ext_url`` the url when it is an extension,
    ``ext_defined`` False when it is an extension whose definition is not known.
    """

    def_path: str
    path: str
    type_code: str
    ext_url: str | None = None
    is_resource: bool = False
    ext_defined: bool = True


class Walk:
    """One validation run: the definitions to use and the issues found so far."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator
        self.definitions = validator.definitions
        self.issues: list[Issue] = []
        self.resources: list[Json] = []  # the enclosing resources, innermost last (%resource of invariants)
        #: for each of those, the resource that is not contained in another (%rootResource, fhirpath.html#vars)
        self.containers: list[Json] = []
        self._nested_seen: set[int] = set()
        #: (id of a value, profile url) -> conforms, for profile discriminators (slicing.py)
        self.conformance: dict[tuple[int, str], bool] = {}

    def add(self, severity: str, code: str, message: str, location: str) -> None:
        self.issues.append(Issue(severity, code, message, location))

    # ---- resources ----------------------------------------------------------------------------------------

    def resource(
        self,
        res: Any,
        loc: str,
        explicit: Sequence[str] = (),
        declared: Sequence[str] = (),
        contained: bool = False,
    ) -> None:
        """Validate a resource against its base type, ``meta.profile``, ``explicit`` profiles (an unknown one
        is an error) and ``declared`` ones (type profiles of the element holding it; unknown: a warning);
        ``contained``: it is in the ``contained`` of the enclosing resource."""
        if not isinstance(res, dict):
            self.add("error", "structure", "a resource must be a JSON object", loc)
            return
        rt = res.get("resourceType")
        if not isinstance(rt, str) or not model().is_resource_type(rt):
            message = "resourceType is missing" if rt is None else f"unknown resource type {rt!r}"
            self.add("error", "structure" if rt is None else "not-supported", message, loc)
            return
        targets = self._profiles(res, rt, loc, explicit, declared)
        self.resources.append(res)
        self.containers.append(self.containers[-1] if contained and self.containers else res)
        try:
            for profile in targets:
                self.object(res, profile.root, loc, Host(rt, rt, rt, is_resource=True))
                self.invariants(res, profile.root, loc)
            checks.resource_rules(self, res, rt, loc)
        finally:
            self.resources.pop()
            self.containers.pop()

    def _profiles(
        self, res: Json, rt: str, loc: str, explicit: Sequence[str], declared: Sequence[str]
    ) -> list[CompiledProfile]:
        """The compiled profiles a resource is validated against; the base type when none resolves.

        Each profile's snapshot holds the base definition too, so the base is walked only when no profile
        applies (https://hl7.org/fhir/R4/profiling.html#snapshot).
        """
        found: list[CompiledProfile] = []
        meta = res.get("meta")
        claimed = meta.get("profile") if isinstance(meta, dict) else None
        wanted = [
            (u, f"{loc}.meta.profile[{i}]", "warning")
            for i, u in enumerate(claimed if isinstance(claimed, list) else ())
            if isinstance(u, str)
        ]
        wanted += [(u, loc, "warning") for u in declared] + [(u, loc, "error") for u in explicit]
        for url, where, severity in wanted:
            profile = self.validator.compiled(url)
            if profile is None:
                # The HL7 validator warns about an unknown meta.profile by default; a profile asked for
                # explicitly must be checked, so not finding it is an error.
                self.add(severity, "not-found", f"profile {url} is unknown, so it was not checked", where)
            elif profile.type != rt:
                self.add("error", "structure", f"profile {url} is for {profile.type}, not {rt}", where)
            elif all(p is not profile for p in found):
                found.append(profile)
        if not found:
            base = self.validator.base(rt)
            if base is not None:
                found.append(base)
        return found

    # ---- objects ------------------------------------------------------------------------------------------

    def object(self, obj: Json, scope: Node, loc: str, host: Host) -> None:
        """Check the members of one JSON object against the children of ``scope``."""
        if not obj or (len(obj) == 1 and "id" in obj):
            # ele-1 (https://hl7.org/fhir/R4/element.html#invs), checked here rather than by FHIRPath.
            self.add("error", "invariant", "ele-1: all FHIR elements must have a @value or children", loc)
        children = scope.children
        seen: set[str] = set()
        # Most objects have no ``_name`` companion: look one up only where some key starts with "_".
        companions = any(key[:1] == "_" for key in obj)
        for key, value in obj.items():
            companion: Any = None
            if companions and key[:1] == "_":  # (an empty key is an unknown element, below)
                if key[1:] in obj:
                    continue  # checked with its value
                key, value, companion = key[1:], None, value
            elif host.is_resource and key == "resourceType":
                continue
            elif companions:
                companion = obj.get("_" + key)
            node = children.get(key)
            code: str | None = None
            if node is None or node.is_choice:
                hit = scope.choices().get(key)
                if hit is None:
                    seen.add(self._unknown(key, scope, loc))
                    continue
                node, code = hit
            elif host.is_resource and key == "id":
                code = "id"  # Resource.id is typed System.String in R4 snapshots, but is an id (resource.html#id)
            if node.name in seen:
                message = f"only one type of {node.name} is allowed, found {key!r} as well"
                self.add("error", "structure", message, f"{loc}.{key}")
                continue
            seen.add(node.name)
            self.element(node, code, value, companion, f"{loc}.{key}", host)
        for child in scope.required():
            if child.name not in seen:
                where = f"{loc}.{child.name.removesuffix('[x]')}"
                if child.min:
                    self.add("error", "required", f"minimum required = {child.min}, but only found 0", where)
                if child.slicing is not None:
                    slicing.assign(self, child, [], where)  # required slices are missing too

    def _unknown(self, key: str, scope: Node, loc: str) -> str:
        """Report an element the definition does not have; returns the name it stands for (choice or key)."""
        for child in scope.children.values():
            prefix = child.name[:-3]
            if child.is_choice and key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isupper():
                allowed = ", ".join(t.code for t in child.types)
                message = f"type {key[len(prefix) :]} is not allowed for {child.name} (allowed: {allowed})"
                self.add("error", "structure", message, f"{loc}.{key}")
                return child.name  # the choice is present, with a wrong type: not also "missing"
        self.add("error", "structure", f"unknown element {key!r}", f"{loc}.{key}")
        return key

    # ---- elements -----------------------------------------------------------------------------------------

    def element(self, node: Node, code: str | None, value: Any, companion: Any, loc: str, host: Host) -> None:
        """One element of an object: its JSON shape, cardinality, slices and every repetition."""
        if value is None and companion is None:
            self.add("error", "structure", "null is not allowed here", loc)
            return
        if value is not None and type(value) is not list and not node.is_array:
            items = [value]  # the usual single value of a 0..1 element: nothing to report about its shape
        else:
            items = self._listed(node, value, loc, value is None)
        comps = self._listed(node, companion, _companion(loc), True) if companion is not None else []
        count = len(items) if len(items) >= len(comps) else len(comps)
        if node.max is not None and count > node.max:
            message = f"maximum allowed = {node.max}, but found {count}"
            self.add("error", "structure", message if node.max else "element is not allowed here (max = 0)", loc)
        if count < node.min:
            self.add("error", "required", f"minimum required = {node.min}, but only found {count}", loc)
        assigned = slicing.assign(self, node, items, loc) if node.slicing is not None else None
        def_path = f"{host.def_path}.{node.name}"
        if count == 1 and not comps and not node.is_array and type(value) is not list:
            if items[0] is None:
                self.add("error", "structure", "null is not allowed here", loc)
            else:
                self.item((assigned and assigned[0]) or node, code, items[0], None, loc, def_path, host)
            return
        indexed = node.is_array or isinstance(value, list)
        for i in range(count):
            item = items[i] if i < len(items) else None
            comp = comps[i] if i < len(comps) else None
            where = f"{loc}[{i}]" if indexed else loc
            if item is None and comp is None:
                self.add("error", "structure", "null is not allowed here", where)
                continue
            self.item((assigned and assigned[i]) or node, code, item, comp, where, def_path, host)

    def _listed(self, node: Node, value: Any, loc: str, optional: bool) -> list[Any]:
        """The repetitions of a JSON member, with an issue when the array shape is wrong."""
        if value is None:
            return []
        if isinstance(value, list):
            if not node.is_array:
                self.add("error", "structure", f"{node.name} must not be an array (max = 1)", loc)
            if not value and not optional:
                self.add("error", "structure", "an array must not be empty", loc)
            return value
        if node.is_array:
            self.add("error", "structure", f"{node.name} must be a JSON array", loc)
        return [value]

    def item(self, node: Node, code: str | None, item: Any, comp: Any, loc: str, def_path: str, host: Host) -> None:
        """One repetition of an element: its type's checks, then fixed/pattern, binding and invariants."""
        code = code or _single_type(node)
        kind = _KINDS.get(code) or _kind(code)
        if kind is _PRIMITIVE:
            if comp is None and node.max_length is None:  # the usual primitive: only its value to check
                problem = _primitive_problem(code, item)
                if problem is not None:
                    self.add("error", problem[0], problem[1], loc)
            else:
                self.primitive(node, code, item, comp, loc, def_path)
        elif kind is _XHTML:
            if not isinstance(item, str) or not item.lstrip().startswith("<div"):
                self.add("error", "structure", "narrative must be XHTML in a <div> element", loc)
            return
        elif kind is _RESOURCE:
            self._nested(node, code, item, loc)
            return
        elif not isinstance(item, dict):
            self.add("error", "structure", f"expected a JSON object of type {code}", loc)
            return
        elif node.name in EXTENSION_NAMES and code == "Extension":
            extensions.check(self, node, item, loc, host, modifier=node.name == "modifierExtension")
        else:
            self.complex(node, code, item, loc, Host(def_path, node.path, code))
        if item is None:
            return
        if node.fixed is not None or node.pattern is not None:
            checks.fixed_and_pattern(self, node, item, loc)
        if node.binding is not None:
            self.issues += bindings.check(self.definitions, node.binding, code, item, loc)
        if node.invariants:
            self.invariants(item, node, loc)

    def complex(self, node: Node, code: str, item: Json, loc: str, host: Host, scope: Node | None = None) -> None:
        """A data type or backbone element: its children, its type's invariants, identifier rules."""
        scope = scope or self.scope(node, code)
        if scope is None:
            self.add("warning", "not-supported", f"no definition of type {code} is available to check this", loc)
            return
        self.object(item, scope, loc, host)
        if scope is not node and scope.invariants:
            self.invariants(item, scope, loc)
        if code == "Identifier":
            checks.identifier(self, item, loc)
        elif code == "Coding":
            checks.coding(self, item, loc)
        elif code in checks.QUANTITY_TYPES:
            checks.quantity(self, item, loc)

    def primitive(self, node: Node, code: str, value: Any, comp: Any, loc: str, def_path: str) -> None:
        """A primitive: JSON type and value format (https://hl7.org/fhir/R4/json.html#primitive), then its
        ``_name`` companion with the element id and extensions."""
        if value is not None:
            problem = _primitive_problem(code, value)
            if problem is not None:
                self.add("error", problem[0], problem[1], loc)
            elif node.max_length is not None and isinstance(value, str) and len(value) > node.max_length:
                self.add("error", "value", f"value is longer than maxLength {node.max_length}", loc)
        if comp is None:
            return
        if not isinstance(comp, dict):
            self.add("error", "structure", "the _ companion of a primitive must be a JSON object", _companion(loc))
            return
        scope = self.scope(node, code)
        if scope is not None:
            self.object(comp, scope, _companion(loc), Host(def_path, node.path, code))

    def _nested(self, node: Node, code: str, item: Any, loc: str) -> None:
        """A resource inside another (Bundle.entry.resource, contained, Parameters.parameter.resource)."""
        if id(item) in self._nested_seen:
            return  # already validated during the walk of another profile of the container
        self._nested_seen.add(id(item))
        if isinstance(item, dict) and code not in _RESOURCE_CODES and item.get("resourceType") != code:
            self.add("error", "structure", f"expected a {code} resource, found {item.get('resourceType')}", loc)
            return
        declared = [p for t in node.types for p in t.profiles]
        self.resource(item, loc, declared=declared, contained=node.name == "contained")

    # ---- definitions --------------------------------------------------------------------------------------

    def scope(self, node: Node, code: str) -> Node | None:
        """The node whose children an instance of ``node`` (typed ``code``) may have.

        The element's own children where the snapshot unfolds it; else the ``contentReference`` target; else
        the type's profile (``type.profile``, e.g. an extension definition); else the base type.
        """
        found = node.scopes.get(code, _MISSING)
        if found is _MISSING:
            found = self._find_scope(node, code)
            node.scopes[code] = found
        return found  # type: ignore[return-value]

    def _find_scope(self, node: Node, code: str) -> Node | None:
        if node.children:
            return node
        if node.target is not None:
            return self.scope(node.target, code) if node.target is not node else None
        for t in node.types:
            if t.code == code:
                for url in t.profiles:
                    profile = self.validator.compiled(url)
                    if profile is not None:
                        return profile.root
        base = self.validator.base(code)
        return base.root if base is not None else None

    def invariants(self, value: Any, node: Node, loc: str) -> None:
        """The FHIRPath invariants of ``node`` on ``value``."""
        if node.invariants:
            self.issues += checks.invariants(value, node, loc, self)


_PRIMITIVE, _XHTML, _RESOURCE, _COMPLEX = "primitive", "xhtml", "resource", "complex"
#: type code -> how the walker treats its instances (one of the four above), filled as codes are met
_KINDS: dict[str, str] = {}


def _kind(code: str) -> str:
    m = model()
    if m.is_primitive(code):
        kind = _PRIMITIVE
    elif code == "xhtml":
        kind = _XHTML
    elif code in _RESOURCE_CODES or m.is_resource_type(code):
        kind = _RESOURCE
    else:
        kind = _COMPLEX
    _KINDS[code] = kind
    return kind


def _single_type(node: Node) -> str:
    if node.types:
        return node.types[0].code
    if node.target is not None and node.target.types:
        return node.target.types[0].code
    return "BackboneElement"


def _companion(loc: str) -> str:
    """``Patient.birthDate`` -> ``Patient._birthDate``; ``Patient.name[0].given[1]`` -> ``...._given[1]``."""
    head, _, last = loc.rpartition(".")
    return f"{head}._{last}"


#: (type code, string value) -> its problem or None: ids, codes, systems and dates recur in every Bundle.
_CHECKED: dict[tuple[str, str], tuple[str, str] | None] = {}
_CHECKED_MAX, _CHECKED_LONGEST = 8192, 128


def _primitive_problem(code: str, value: Any) -> tuple[str, str] | None:
    """(issue code, message) when a JSON value is not a valid ``code`` primitive, else None; the verdicts
    on short strings are remembered (a bounded table, emptied when full)."""
    if type(value) is not str or len(value) > _CHECKED_LONGEST:
        return _check_primitive(code, value)
    found = _CHECKED.get((code, value), _MISSING)
    if found is _MISSING:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        found = _CHECKED[code, value] = _check_primitive(code, value)
    return found  # type: ignore[return-value]


def _check_primitive(code: str, value: Any) -> tuple[str, str] | None:
    info = _PRIMITIVES.get(code) or model().primitive(code)
    if info is None:
        return None
    _PRIMITIVES[code] = info
    if info.json == "boolean":
        return None if isinstance(value, bool) else ("structure", f"{code} must be a JSON boolean, found {value!r}")
    if info.json == "number":
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
            return "structure", f"{code} must be a JSON number, found {value!r}"
        if code != "decimal" and not (isinstance(value, int) and _INT32[0] <= value <= _INT32[1]):
            return "value", f"{value} is not a valid {code}"
        text = str(value)
    elif not isinstance(value, str):
        return "structure", f"{code} must be a JSON string, found {value!r}"
    else:
        text = value
    if not info.matches(text):
        return "value", f"{text!r} is not a valid {code}"
    return None
