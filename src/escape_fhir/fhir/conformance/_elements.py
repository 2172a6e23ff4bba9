"""Small builders for differential StructureDefinitions (FHIR R4 ElementDefinition, StructureDefinition).

Conventions kept so that any snapshot generator reads the differentials the same way (FHIR R4
profiling.html): element ``id`` names slices as ``Path.element:sliceName.child`` and ``path`` is the id
without the slice names; a slicing is declared on the sliced element before its slices; elements follow
the order of the base resource.
"""

from __future__ import annotations

from typing import Any, Final

from escape_fhir import __version__
from escape_fhir.fhir import codes
from escape_fhir.fhir.resources import Json

PUBLISHER: Final = "escape-fhir"
#: The project's conformance resources are for the NHS in England (ISO 3166 GB, as UK Core states).
JURISDICTION: Final = [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "GB", "display": "United Kingdom"}]}]
R4: Final = "http://hl7.org/fhir/StructureDefinition"


def element(element_id: str, **rules: Any) -> Json:
    """One differential element; ``sliceName`` comes from a final ``:name`` in the id."""
    path = ".".join(part.partition(":")[0] for part in element_id.split("."))
    out: Json = {"id": element_id, "path": path}
    last = element_id.rsplit(".", 1)[-1]
    if ":" in last:
        out["sliceName"] = last.partition(":")[2]
    return out | rules


def slicing(discriminator_type: str, discriminator_path: str, description: str) -> Json:
    """An open, unordered slicing with one discriminator (profiling.html#discriminator)."""
    return {
        "discriminator": [{"type": discriminator_type, "path": discriminator_path}],
        "description": description,
        "ordered": False,
        "rules": "open",
    }


def binding(value_set: str, strength: str = "required", description: str | None = None) -> Json:
    out: Json = {"strength": strength}
    if description:
        out["description"] = description
    return out | {"valueSet": value_set}


def reference(*targets: str) -> list[Json]:
    """A Reference type limited to the given profiles (full canonicals, or base R4 type names)."""
    profiles = [t if "/" in t else f"{R4}/{t}" for t in targets]
    return [{"code": "Reference", "targetProfile": profiles}]


def invariant(key: str, human: str, expression: str, source: str, severity: str = "error") -> Json:
    return {"key": key, "severity": severity, "human": human, "expression": expression, "source": source}


def canonical_is(element_name: str, *urls: str) -> str:
    """FHIRPath: a canonical element names one of ``urls``, with or without ``|version``."""
    options = [f"{element_name} = '{u}' or {element_name}.startsWith('{u}|')" for u in urls]
    return " or ".join(f"({o})" for o in options) if len(options) > 1 else options[0]


def coded(system: str, code: str) -> str:
    """FHIRPath: the focus (a CodeableConcept) has a coding with this system and code."""
    return f"coding.where(system = '{system}' and code = '{code}').exists()"


def profile(sd_id: str, resource_type: str, base: str, title: str, description: str, elements: list[Json]) -> Json:
    """A differential constraint on ``base`` (a UK Core profile) at ``{BASE}/StructureDefinition/{sd_id}``."""
    return _structure_definition(sd_id, title, description) | {
        "kind": "resource",
        "abstract": False,
        "type": resource_type,
        "baseDefinition": base,
        "derivation": "constraint",
        "differential": {"element": elements},
    }


def extension(sd_id: str, name: str, title: str, description: str, contexts: list[str], elements: list[Json]) -> Json:
    """A simple extension definition used on the elements named in ``contexts``."""
    return _structure_definition(sd_id, title, description, name) | {
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in contexts],
        "type": "Extension",
        "baseDefinition": f"{R4}/Extension",
        "derivation": "constraint",
        "differential": {"element": elements},
    }


def _structure_definition(sd_id: str, title: str, description: str, name: str | None = None) -> Json:
    return {
        "resourceType": "StructureDefinition",
        "id": sd_id,
        "url": f"{codes.SD}/{sd_id}",
        "version": __version__,
        "name": name or sd_id,
        "title": title,
        "status": "active",
        "publisher": PUBLISHER,
        "description": description,
        "jurisdiction": JURISDICTION,
        "fhirVersion": codes.FHIR_VERSION,
    }
