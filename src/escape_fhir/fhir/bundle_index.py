"""Finding resources in a sender's Bundle: every kind of reference real senders write.

A referral Bundle's references come in several forms (FHIR R4 references.html, bundle.html "Resolving
references in Bundles", http.html#trules for conditional references):

* a ``fullUrl`` (``urn:uuid:...`` or an absolute URL), or ``Type/id`` of an entry, possibly versioned;
* ``#id``: a resource contained in the resource that holds the reference;
* a conditional reference ``Type?identifier=system|value`` (integration engines, transactions);
* a logical reference: ``Reference.identifier`` (with ``type``) and no ``reference`` at all.

Each resource found is a :class:`Node`: the resource and its FHIRPath location, so that every fact read
from it can say where it came from (``Bundle.entry[3].resource.contained[0]``).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl

Json = dict[str, Any]


class Node:
    """A resource of the Bundle (an entry's or a contained one) and where it is. Compared by identity: two
    entries with the same content are still two resources."""

    __slots__ = ("entry", "location", "resource", "type")

    def __init__(self, resource: Json, location: str, entry: int) -> None:
        self.resource = resource
        self.location = location
        self.entry = entry  # the entry it is, or is contained in
        kind = resource.get("resourceType")
        self.type = kind if isinstance(kind, str) else ""

    def __repr__(self) -> str:
        return f"Node({self.type} at {self.location})"

    def at(self, path: str = "") -> str:
        return f"{self.location}.{path}" if path else self.location

    def get(self, key: str, default: Any = None) -> Any:
        return self.resource.get(key, default)

    def items(self, key: str) -> list[tuple[int, Json]]:
        """The object elements of a repeating element, with their index (non-objects skipped); a list, not a
        generator (compiled, a generator costs more to step through than the list costs to build)."""
        value = self.resource.get(key)
        if not isinstance(value, list):
            return []
        return [(k, element) for k, element in enumerate(value) if isinstance(element, dict)]


def objects(value: Any) -> list[Json]:
    """A repeating element's objects (anything else dropped): senders' JSON is not always well typed."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


#: The locations of the first entries' resources, made once per process (the same strings as made per entry).
ENTRY_LOCATIONS: Final = tuple(f"Bundle.entry[{i}].resource" for i in range(128))


class BundleIndex:
    """The Bundle's resources, found by fullUrl, ``Type/id``, identifier and containment. A plain class (a
    dataclass's generated ``__init__`` would be interpreted Python even here, compiled)."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.keys: dict[str, Node] = {}
        self.contained: dict[tuple[int, str], Node] = {}
        self._by_type: dict[str, list[Node]] | None = None

    @classmethod
    def of(cls, bundle: Json) -> BundleIndex:
        entries = bundle.get("entry")
        index = cls([])
        nodes, keys = index.nodes, index.keys
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, dict):
                continue
            res = entry.get("resource")
            if not isinstance(res, dict):
                continue
            node = Node(res, ENTRY_LOCATIONS[i] if i < len(ENTRY_LOCATIONS) else f"Bundle.entry[{i}].resource", i)
            nodes.append(node)
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                keys.setdefault(full_url, node)
            res_id = res.get("id")
            if isinstance(res_id, str):
                keys.setdefault(f"{node.type}/{res_id}", node)
            contained = res.get("contained")
            if contained is None:
                continue
            for k, inner in enumerate(objects(contained)):
                inner_node = Node(inner, f"{node.location}.contained[{k}]", i)
                nodes.append(inner_node)
                inner_id = inner.get("id")
                if isinstance(inner_id, str):
                    index.contained[(i, inner_id)] = inner_node
        return index

    def entry_node(self, i: int) -> Node | None:
        return next((n for n in self.nodes if n.entry == i and ".contained[" not in n.location), None)

    def of_type(self, resource_type: str) -> list[Node]:
        if self._by_type is None:
            self._by_type = {}
            for n in self.nodes:
                self._by_type.setdefault(n.type, []).append(n)
        return list(self._by_type.get(resource_type, ()))

    def resolve(self, reference: Any, holder: Node | None = None) -> Node | None:
        """The resource a Reference points at, or None when it is not in the Bundle."""
        if not isinstance(reference, dict):
            return None
        ref = reference.get("reference")
        if isinstance(ref, str) and ref:
            return self._by_reference(ref, holder)
        ident = reference.get("identifier")
        if isinstance(ident, dict):
            kind = reference.get("type") if isinstance(reference.get("type"), str) else None
            return self.by_identifier(kind, ident.get("system"), ident.get("value"))
        return None

    def _by_reference(self, ref: str, holder: Node | None) -> Node | None:
        if ref.startswith("#"):
            return self.contained.get((holder.entry, ref[1:])) if holder is not None else None
        if ref in self.keys:
            return self.keys[ref]
        path, _, query = ref.partition("?")
        if query:
            return self._conditional(path.rstrip("/").split("/")[-1], query)
        return self.keys.get(type_id(path))

    def _conditional(self, kind: str, query: str) -> Node | None:
        """``Type?identifier=system|value`` (and ``&``-joined identifiers): the one entry that matches all."""
        wanted = [v for k, v in _query_pairs(query) if k == "identifier"]
        if not wanted:
            return None
        found = None
        for value in wanted:
            system, bar, code = value.partition("|")
            node = self.by_identifier(kind, system if bar else None, code if bar else system)
            if node is None or (found is not None and node is not found):
                return None
            found = node
        return found

    def by_identifier(self, kind: str | None, system: Any, value: Any) -> Node | None:
        """The one resource (of ``kind`` when given) with this identifier; None when none or several."""
        if not isinstance(value, str) or not value:
            return None
        matches = [
            n
            for n in self.nodes
            if (kind is None or n.type == kind)
            and any(
                i.get("value") == value and (system is None or i.get("system") == system)
                for i in objects(n.get("identifier"))
            )
        ]
        return matches[0] if len(matches) == 1 else None


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query)``; a query with nothing to decode (no ``%``, no ``+``) is split here, as parse_qsl
    splits it (on ``&``, then the first ``=``; parts without ``=`` or with an empty value are dropped),
    without its Python-level decoding of every name and value."""
    if "%" in query or "+" in query:
        return parse_qsl(query)
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and value:
            pairs.append((name, value))
    return pairs


def resolve_reference(keys: dict[str, int], reference: Any) -> int | None:
    """The entry index a Reference points at by fullUrl or ``Type/id`` (the message checks use entry indices)."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str):
        return None
    return keys[ref] if ref in keys else keys.get(type_id(ref.split("?")[0]))


def type_id(url: str) -> str:
    """The ``Type/id`` an absolute or versioned URL ends in (FHIR R4 Bundle, "Resolving references")."""
    parts = url.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else ""
