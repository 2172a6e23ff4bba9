"""Local terminology: ValueSet expansion and code membership from the definitions held, no server.

What can be expanded (https://hl7.org/fhir/R4/valueset.html#compositions):

- a ``compose.include`` of listed concepts, in any code system (SNOMED CT and LOINC included: the codes
  are listed, nothing needs the code system itself);
- a whole code system that is held with ``content = complete`` (project, UK Core, BaRS ...);
- ``is-a``, ``descendent-of``, ``is-not-a`` and ``=`` filters on the ``concept`` property of a held,
  complete, hierarchical code system (https://hl7.org/fhir/R4/valueset-filter-operator.html);
- ``valueSet`` imports of value sets that can themselves be expanded, and ``exclude`` of the same kinds;
- a value set that carries an ``expansion`` (the base R4 required value sets from the model do).

Displays (:meth:`Terminology.displays`, for :mod:`~escape_fhir.validation.display`) come from a held
CodeSystem with ``content = complete``, else from the R4 code systems shipped in ``r4-terminology.json.gz``.

Anything else (a filter on SNOMED CT or LOINC, a code system not held or held as a fragment) makes the
value set unknown: :meth:`Terminology.expand` returns None and :meth:`Terminology.has_code` answers None
unless a part that can be expanded already contains the code. Such codes are not errors
(https://hl7.org/fhir/R4/validation.html#terminology: a validator reports what it cannot check).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from escape_fhir.validation.definitions import Json, split_canonical

if TYPE_CHECKING:
    from escape_fhir.validation.definitions import Definitions

__all__ = ["Terminology"]

Codes = set[tuple[str, str]]
_HIERARCHY_OPS = frozenset({"is-a", "descendent-of", "is-not-a", "="})


class _Unknown(Exception):
    """A part of a value set that cannot be expanded locally (internal; never escapes this module)."""


class Terminology:
    """Expansions over a :class:`~escape_fhir.validation.definitions.Definitions` chain, cached per URL."""

    def __init__(self, definitions: Definitions) -> None:
        self._defs = definitions
        self._expansions: dict[str, Codes | None] = {}
        self._displays: dict[str, dict[str, tuple[str, ...]] | None] = {}

    def expand(self, value_set_url: str) -> dict[str, frozenset[str]] | None:
        """``{system: codes}``, or None when the value set is unknown or cannot be expanded locally."""
        pairs = self._expand_cached(value_set_url)
        if pairs is None:
            return None
        by_system: dict[str, set[str]] = {}
        for system, code in pairs:
            by_system.setdefault(system, set()).add(code)
        return {system: frozenset(codes) for system, codes in by_system.items()}

    def has_code(self, value_set_url: str, system: str | None, code: str) -> bool | None:
        """True/False when membership is known; None when the value set cannot be decided locally."""
        pairs = self._expand_cached(value_set_url)
        if pairs is not None:
            if system is None:
                return any(c == code for _, c in pairs)
            return (system, code) in pairs
        return self._partial(value_set_url, system, code)

    def displays(self, system: str, code: str) -> tuple[str, ...] | None:
        """The valid displays of ``system|code`` (display, then English designations); None when the code
        system is not held whole or does not have the code."""
        if system not in self._displays:
            self._displays[system] = self._system_displays(system)
        by_code = self._displays[system]
        return by_code.get(code) if by_code is not None else None

    def _system_displays(self, system: str) -> dict[str, tuple[str, ...]] | None:
        """code -> displays for one code system, built once: a held complete CodeSystem wins over R4's."""
        cs = self._defs.code_system(system)
        if cs is not None:
            if cs.get("content", "complete") != "complete" or not _english(cs.get("language")):
                return None
            return {str(c["code"]): _concept_displays(c) for c in _flatten(list(cs.get("concept", []))) if "code" in c}
        from escape_fhir.validation.coredata import core_terminology

        held = core_terminology().displays.get(system)
        return {code: tuple(names) for code, names in held.items()} if held is not None else None

    def _expand_cached(self, url: str) -> Codes | None:
        if url not in self._expansions:
            self._expansions[url] = None  # guards against value sets that import themselves
            try:
                self._expansions[url] = self._expand(url, ())
            except _Unknown:
                self._expansions[url] = None
        return self._expansions[url]

    # ---- expansion ----------------------------------------------------------------------------------------

    def _expand(self, url: str, stack: tuple[str, ...]) -> Codes:
        base, _ = split_canonical(url)
        if base in stack:
            raise _Unknown(f"circular value set {base}")
        vs = self._defs.value_set(url)
        if vs is None:
            raise _Unknown(f"value set {url} not held")
        compose = vs.get("compose")
        if compose is None:
            return _from_expansion(vs)
        result: Codes = set()
        for include in compose.get("include", []):
            result |= self._include(include, (*stack, base))
        for exclude in compose.get("exclude", []):
            result -= self._include(exclude, (*stack, base))
        return result

    def _include(self, include: Json, stack: tuple[str, ...]) -> Codes:
        """One include/exclude: the intersection of its system part and its value set imports."""
        parts: list[Codes] = [self._expand(str(u), stack) for u in include.get("valueSet", [])]
        system = include.get("system")
        if system is not None:
            parts.append({(system, code) for code in self._system_codes(system, include)})
        if not parts:
            raise _Unknown("empty include")
        return set.intersection(*parts)

    def _system_codes(self, system: str, include: Json) -> set[str]:
        if "concept" in include:
            return {str(c["code"]) for c in include["concept"]}
        concepts = self._concepts(system, include.get("version"))
        if "filter" in include:
            return set.intersection(*(_filtered(concepts, f) for f in include["filter"]))
        return {str(c["code"]) for c in _flatten(concepts)}

    def _concepts(self, system: str, version: str | None) -> list[Json]:
        cs = self._defs.code_system(f"{system}|{version}" if version else system)
        if cs is None or cs.get("content", "complete") != "complete":
            raise _Unknown(f"code system {system} not held in full")
        return list(cs.get("concept", []))

    # ---- membership when the whole value set is unknown ---------------------------------------------------

    def _partial(self, url: str, system: str | None, code: str) -> bool | None:
        """Membership decided include by include when the whole value set cannot be expanded.

        An include of another system (and no value set import) cannot hold ``system|code``; the code is in
        when an include that can be expanded has it, out when every include that might hold it can be
        expanded and none does. Excludes are not worked through here: they make the answer unknown.
        """
        vs = self._defs.value_set(url)
        compose = vs.get("compose") if vs else None
        if compose is None or compose.get("exclude"):
            return None
        unknown = False
        for include in compose.get("include", []):
            if system is not None and include.get("system") != system and not include.get("valueSet"):
                continue
            try:
                codes = self._include(include, (split_canonical(url)[0],))
            except _Unknown:
                unknown = True
                continue
            if any(c == code and (system is None or s == system) for s, c in codes):
                return True
        return None if unknown else False


def _from_expansion(vs: Json) -> Codes:
    expansion = vs.get("expansion")
    if expansion is None:
        raise _Unknown(f"value set {vs.get('url')} has neither compose nor expansion")
    return {(str(c.get("system")), str(c["code"])) for c in _flatten(expansion.get("contains", [])) if "code" in c}


def _english(language: object) -> bool:
    """No language, or English: the languages whose displays count (see :mod:`~escape_fhir.validation.display`)."""
    return language is None or language == "en" or (isinstance(language, str) and language.startswith("en-"))


def _concept_displays(concept: Json) -> tuple[str, ...]:
    names = [concept["display"]] if isinstance(concept.get("display"), str) else []
    for designation in concept.get("designation") or []:
        value = designation.get("value") if isinstance(designation, dict) else None
        if isinstance(value, str) and _english(designation.get("language")):
            names.append(value)
    return tuple(names)


def _flatten(concepts: list[Json]) -> Iterator[Json]:
    """Nested concepts (CodeSystem.concept.concept) or expansion entries (contains.contains), depth first."""
    for c in concepts:
        yield c
        children: list[Json] = c.get("concept") or c.get("contains") or []
        yield from _flatten(children)


def _filtered(concepts: list[Json], f: Json) -> set[str]:
    """Hierarchy filters over a code system's nested concepts (valueset-filter-operator.html)."""
    op = f.get("op")
    if f.get("property") != "concept" or op not in _HIERARCHY_OPS:
        raise _Unknown(f"filter {f.get('property')} {op} not supported locally")
    value = f.get("value")
    everything = {str(c["code"]) for c in _flatten(concepts)}
    if op == "=":
        return {value} & everything if isinstance(value, str) else set()
    for concept in _flatten(concepts):
        if concept["code"] == value:
            below = {str(c["code"]) for c in _flatten(concept.get("concept", []))}
            if op == "is-a":
                return below | {value}
            if op == "descendent-of":
                return below
            return everything - below - {value}
    raise _Unknown(f"filter value {value} is not in the code system")
