"""Where conformance definitions come from: a chain of sources, each answering "not mine" with None.

The contract between the loaders (folders, packages, the package cache, the project's own profiles, the
base R4 model) and the checks. Everything is keyed by canonical URL; ``url|version`` is accepted and the
version honoured where the source has several.

Snapshots are in the standard FHIR form: a list of ElementDefinition JSON dicts (``id``, ``path``,
``sliceName``, ``min``, ``max``, ``type``, ``fixed[x]``, ``pattern[x]``, ``binding``, ``constraint``,
``slicing``, ``contentReference`` ...), as in ``StructureDefinition.snapshot.element``, generated from the
differential along the whole ``baseDefinition`` chain where the source holds only a differential.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

Json = dict[str, Any]


class DefinitionSource(Protocol):
    """One place definitions come from."""

    def resource(self, resource_type: str, url: str) -> Json | None:
        """The conformance resource (StructureDefinition, ValueSet, CodeSystem, Questionnaire ...) with
        this canonical URL (``url`` or ``url|version``), or None when this source does not hold it."""

    def all(self, resource_type: str) -> Iterable[Json]:
        """Every conformance resource of a type this source holds."""
