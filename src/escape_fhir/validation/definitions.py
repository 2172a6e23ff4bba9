"""Where conformance definitions come from: a chain of sources, each answering "not mine" with None.

The contract between the loaders (folders, packages, the package cache, the project's own profiles, the
base R4 model) and the checks. Everything is keyed by canonical URL; ``url|version`` is accepted and the
version honoured where the source has several.

Snapshots are in the standard FHIR form: a list of ElementDefinition JSON dicts (``id``, ``path``,
``sliceName``, ``min``, ``max``, ``type``, ``fixed[x]``, ``pattern[x]``, ``binding``, ``constraint``,
``slicing``, ``contentReference`` ...), as in ``StructureDefinition.snapshot.element``, generated from the
differential along the whole ``baseDefinition`` chain where the source holds only a differential
(https://hl7.org/fhir/R4/profiling.html#snapshot, see :mod:`escape_fhir.validation.snapshot`).

The chain (after HAPI's ``ValidationSupportChain``)::

    Definitions([project, package..., package cache..., base R4 model, cross-version extensions])
        .resource(type, url)   first source that holds it
        .snapshot(url)         generated once per process, problems kept in .problems(url)
        .expand(vs_url)        local terminology (:mod:`escape_fhir.validation.terminology`)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from escape_fhir.errors import Issue

__all__ = ["CORE_SD", "DefinitionSource", "Definitions", "Json", "default_definitions", "split_canonical"]

Json = dict[str, Any]
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"


class DefinitionSource(Protocol):
    """One place definitions come from."""

    def resource(self, resource_type: str, url: str) -> Json | None:
        """The conformance resource (StructureDefinition, ValueSet, CodeSystem, Questionnaire ...) with
        this canonical URL (``url`` or ``url|version``), or None when this source does not hold it."""

    def all(self, resource_type: str) -> Iterable[Json]:
        """Every conformance resource of a type this source holds."""


def split_canonical(url: str) -> tuple[str, str | None]:
    """``"http://x/vs|1.0"`` -> ``("http://x/vs", "1.0")`` (https://hl7.org/fhir/R4/references.html#canonical)."""
    base, bar, version = url.partition("|")
    return base, (version or None) if bar else None


class Definitions:
    """A chain of definition sources with snapshots and local terminology on top.

    Thread safe: snapshots and expansions are computed once under a lock and cached for the life of the
    object (:func:`default_definitions` keeps one object per argument set, so per process).
    """

    def __init__(self, sources: Sequence[DefinitionSource]) -> None:
        self.sources: tuple[DefinitionSource, ...] = tuple(sources)
        self._lock = threading.RLock()
        self._snapshots: dict[str, list[Json] | None] = {}
        self._problems: dict[str, list[Issue]] = {}
        self._building: set[str] = set()
        self._terminology: Any = None

    # ---- resources ----------------------------------------------------------------------------------------

    def resource(self, resource_type: str, url: str) -> Json | None:
        """The first source's resource of this type and canonical URL, or None."""
        for source in self.sources:
            found = source.resource(resource_type, url)
            if found is not None:
                return found
        return None

    def all(self, resource_type: str) -> Iterator[Json]:
        """Every resource of a type, the first source winning where several hold the same URL."""
        seen: set[str] = set()
        for source in self.sources:
            for res in source.all(resource_type):
                key = f"{res.get('url')}|{res.get('version', '')}"
                if key not in seen:
                    seen.add(key)
                    yield res

    def structure(self, url: str) -> Json | None:
        """The StructureDefinition as held (raw, maybe differential only); a bare type name means base R4."""
        return self.resource("StructureDefinition", self._canonical(url))

    def value_set(self, url: str) -> Json | None:
        return self.resource("ValueSet", url)

    def code_system(self, url: str) -> Json | None:
        return self.resource("CodeSystem", url)

    def questionnaire(self, url: str) -> Json | None:
        return self.resource("Questionnaire", url)

    @staticmethod
    def base_url(type_name: str) -> str:
        """``Patient`` -> ``http://hl7.org/fhir/StructureDefinition/Patient``."""
        return CORE_SD + type_name

    def _canonical(self, url: str) -> str:
        return url if "/" in url or ":" in url else self.base_url(url)

    # ---- snapshots ----------------------------------------------------------------------------------------

    def snapshot(self, url: str) -> list[Json] | None:
        """The snapshot elements of a StructureDefinition (generated from its differential when needed).

        None when the structure is unknown or its base chain cannot be resolved; the reason is then in
        :meth:`problems`. The list is shared: callers must not modify it.
        """
        url = self._canonical(url)
        with self._lock:
            if url in self._snapshots:
                return self._snapshots[url]
            if url in self._building:  # a profile whose chain comes back to itself
                self._note(url, Issue("error", "structure", f"circular baseDefinition chain at {url}", url))
                return None
            self._building.add(url)
            try:
                result = self._build(url)
            finally:
                self._building.discard(url)
            self._snapshots[url] = result
            return result

    def _build(self, url: str) -> list[Json] | None:
        from escape_fhir.validation.snapshot import generate

        sd = self.structure(url)
        if sd is None:
            return None
        held = sd.get("snapshot", {}).get("element")
        if held:
            return list(held)
        base_url = sd.get("baseDefinition")
        if not base_url:
            self._note(url, Issue("error", "structure", f"{url} has neither a snapshot nor a baseDefinition", url))
            return None
        base = self.snapshot(base_url)
        fallback = base is None and sd.get("derivation") == "constraint" and bool(sd.get("type"))
        if base is None and fallback:
            base = self.snapshot(self.base_url(str(sd["type"])))
        if base is None:
            message = f"{url}: base definition {base_url} is not available"
            self._note(url, Issue("error", "not-found", message, url))
            return None
        if fallback:
            self._note(url, _fallback_issue(url, base_url, str(sd["type"])))
        elements, problems = generate(sd, base, self.snapshot)
        for problem in problems:
            self._note(url, Issue("warning", problem.code, problem.message, problem.location) if fallback else problem)
        return elements

    def problems(self, url: str) -> list[Issue]:
        """What went wrong while generating the snapshot of ``url`` (and nothing when it went well).

        Issue locations are the differential element ids (``Patient.identifier:nhsNumber.system``).
        """
        return list(self._problems.get(self._canonical(url), ()))

    def source_problems(self) -> list[Issue]:
        """Files or packages that could not be read (located at the file name or package spec)."""
        return [p for source in self.sources for p in getattr(source, "problems", ())]

    def _note(self, url: str, issue: Issue) -> None:
        self._problems.setdefault(url, []).append(issue)

    # ---- terminology --------------------------------------------------------------------------------------

    def _terms(self) -> Any:
        if self._terminology is None:
            from escape_fhir.validation.terminology import Terminology

            self._terminology = Terminology(self)
        return self._terminology

    def expand(self, value_set_url: str) -> dict[str, frozenset[str]] | None:
        """``{system: codes}`` of a value set, or None when it cannot be expanded locally (SNOMED CT filters...)."""
        with self._lock:
            result: dict[str, frozenset[str]] | None = self._terms().expand(value_set_url)
            return result

    def displays(self, system: str, code: str) -> tuple[str, ...] | None:
        """The valid displays of a code of a code system held whole; None when that cannot be known locally."""
        with self._lock:
            result: tuple[str, ...] | None = self._terms().displays(system, code)
            return result

    def has_code(self, value_set_url: str, system: str | None, code: str) -> bool | None:
        """Whether ``system|code`` is in the value set; None when that cannot be known locally."""
        with self._lock:
            result: bool | None = self._terms().has_code(value_set_url, system, code)
            return result


def _fallback_issue(url: str, base_url: str, type_name: str) -> Issue:
    """A profile whose base profile is not loaded is built on the base R4 type instead, and says so.

    The project's profiles derive from UK Core; without UK Core at hand (no folder given, nothing in the
    package cache) they still check what they add themselves. What they inherit from UK Core is not
    checked, and the differential's references to UK Core slices become warnings.
    """
    message = (
        f"{url}: base definition {base_url} is not available; the snapshot is built on base R4 {type_name} "
        "(load its package, e.g. UK Core, to check what the profile inherits)"
    )
    return Issue("warning", "not-found", message, url)


@functools.lru_cache(maxsize=16)
def _cached_definitions(packages: tuple[str, ...], package_cache: bool) -> Definitions:
    from escape_fhir.validation.sources import default_sources

    return Definitions(default_sources(packages, package_cache=package_cache))


def default_definitions(packages: Sequence[str | Path] = (), *, package_cache: bool = True) -> Definitions:
    """The standard chain, one per distinct arguments for the life of the process.

    In order: the project's own conformance resources; each of ``packages`` (a folder of JSON/XML
    resources, a FHIR package ``.tgz`` or ``name#version`` in the package cache); with ``package_cache``,
    the dependencies those packages (and the project) declare, found in ``~/.fhir/packages``; the base R4
    model shipped in the package; R5 cross-version extensions synthesised on demand. Nothing is fetched.
    """
    key = tuple(str(Path(p).resolve()) if _is_path(p) else str(p) for p in packages)
    return _cached_definitions(key, package_cache)


def package_errors(definitions: Definitions) -> list[str]:
    """One line per package given that was not found or could not be read: a caller that was asked for a
    package refuses to go on without it (``serve``, ``validate``), rather than validating less in silence."""
    return [p.message for p in definitions.source_problems() if p.severity == "error" and p.code == "not-found"]


def _is_path(p: str | Path) -> bool:
    return isinstance(p, Path) or "#" not in p
