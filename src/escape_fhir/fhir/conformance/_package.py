"""The conformance resources as one list, and as a FHIR package folder (FHIR R4/R5 packages.html)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from escape_fhir import __version__
from escape_fhir.fhir import codes
from escape_fhir.fhir.conformance._referral import referral_profiles
from escape_fhir.fhir.conformance._screening import screening_profiles
from escape_fhir.fhir.conformance._sites import site_profiles
from escape_fhir.fhir.conformance._terminology import terminology_resources
from escape_fhir.fhir.questionnaires import all_questionnaires, write_profiles
from escape_fhir.fhir.resources import Json

#: Package names are dot-separated lowercase namespaces, publisher first (packages.html, "name").
PACKAGE_NAME: Final = "escape-fhir.r4"
#: UK Core 2.0.0 (STU2) under its registry id. Its staging repository's package.json calls it
#: ``UKCore.R4.STU.02.00.00`` (../shared/fhir/ukcore); the validator takes either name for it
#: (escape_fhir.validation.sources.PACKAGE_ALIASES).
UKCORE_PACKAGE: Final = ("fhir.r4.ukcore.stu2", "2.0.0")
#: The R4 SDC guide (STU3, FHIR 4.0.1) defining ``sdc-questionnaire-calculatedExpression`` and
#: ``sdc-questionnaire-observationExtract``, which the STarT Back Questionnaire uses.
SDC_PACKAGE: Final = ("hl7.fhir.uv.sdc", "3.0.0")
#: The FHIR extensions pack for R4, defining ``itemWeight`` (R4's ``ordinalValue`` renamed), used on the
#: STarT Back answer options.
EXTENSIONS_PACKAGE: Final = ("hl7.fhir.uv.extensions.r4", "5.2.0")
#: The canonical of each dependency's ImplementationGuide (ImplementationGuide.dependsOn.uri).
_GUIDES: Final = {
    UKCORE_PACKAGE[0]: "https://fhir.hl7.org.uk/ImplementationGuide/hl7.fhir.r4.ukcore.stu2",
    SDC_PACKAGE[0]: "http://hl7.org/fhir/uv/sdc/ImplementationGuide/hl7.fhir.uv.sdc",
    EXTENSIONS_PACKAGE[0]: "http://hl7.org/fhir/extensions/ImplementationGuide/hl7.fhir.uv.extensions",
}


TITLE: Final = "ESCAPE-pain FHIR R4 conformance resources"
DESCRIPTION: Final = (
    "Profiles, extensions, code systems, value sets and Questionnaires for ESCAPE-pain referrals (NHS England), "
    "derived from UK Core and aligned with BaRS."
)


def own_resources() -> list[Json]:
    """The StructureDefinitions, CodeSystems and ValueSets the project defines (not the Questionnaires)."""
    return [*referral_profiles(), *screening_profiles(), *terminology_resources(), *site_profiles()]


def conformance_resources() -> list[Json]:
    """Every conformance resource of the project, Questionnaires and the ImplementationGuide included, as
    fresh FHIR JSON dicts."""
    resources = [*own_resources(), *all_questionnaires()]
    return [*resources, implementation_guide(resources)]


def dependencies() -> dict[str, str]:
    """``package.json`` dependencies: every package whose definitions the content uses, by name and version."""
    return dict([("hl7.fhir.r4.core", codes.FHIR_VERSION), UKCORE_PACKAGE, SDC_PACKAGE, EXTENSIONS_PACKAGE])


def implementation_guide(resources: list[Json]) -> Json:
    """The package's ImplementationGuide (R4): what tools read for its id, dependencies and resource list.

    FHIR packages.html asks a package that is an implementation guide to carry one; the IG Publisher and the
    HL7 validator read ``dependsOn`` and ``definition.resource`` from it.
    """
    depends = [
        {"id": name.replace(".", "_"), "uri": _GUIDES[name], "packageId": name, "version": version}
        for name, version in dependencies().items()
        if name in _GUIDES
    ]
    listed = [
        {
            "reference": {"reference": f"{r['resourceType']}/{r['id']}"},
            "name": str(r.get("title") or r.get("name") or r["id"]),
            "exampleBoolean": False,
        }
        for r in resources
    ]
    return {
        "resourceType": "ImplementationGuide",
        "id": PACKAGE_NAME,
        "url": codes.IMPLEMENTATION_GUIDE,
        "version": __version__,
        "name": "EscapePainFhirR4",
        "title": TITLE,
        "status": "active",
        "publisher": "escape-fhir",
        "description": DESCRIPTION,
        "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "GB"}]}],
        "packageId": PACKAGE_NAME,
        "license": "MIT",
        "fhirVersion": [codes.FHIR_VERSION],
        "dependsOn": depends,
        "definition": {"resource": listed},
    }


def file_name(resource: Json) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def package_manifest() -> Json:
    """``package.json``: what a FHIR tool needs to load the folder as a package and resolve its bases."""
    return {
        "name": PACKAGE_NAME,
        "version": __version__,
        "canonical": codes.BASE,
        "title": TITLE,
        "description": DESCRIPTION,
        "type": "IG",
        "fhirVersions": [codes.FHIR_VERSION],
        "dependencies": dependencies(),
        "author": "escape-fhir",
        "license": "MIT",
        "jurisdiction": "urn:iso:std:iso:3166#GB",
    }


def _index_entry(filename: str, resource: Json) -> Json:
    entry: Json = {"filename": filename, "resourceType": resource["resourceType"], "id": resource["id"]}
    entry |= {key: resource[key] for key in ("url", "version", "kind", "type") if key in resource}
    return entry


def _dump(data: Json) -> str:
    # The same layout as questionnaires.write_profiles, so every file of the folder reads alike.
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_package(folder: Path) -> list[Path]:
    """Write every resource as ``<ResourceType>-<id>.json`` (the ImplementationGuide last), then
    ``package.json`` and ``.index.json``.

    The Questionnaires are written by :func:`escape_fhir.fhir.questionnaires.write_profiles`, their one
    writer. Returns the paths written, in a stable order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in own_resources():
        path = folder / file_name(resource)
        path.write_text(_dump(resource), encoding="utf-8")
        written.append(path)
    written += write_profiles(folder)
    resources = conformance_resources()
    guide = next(r for r in resources if r["resourceType"] == "ImplementationGuide")
    path = folder / file_name(guide)
    path.write_text(_dump(guide), encoding="utf-8")
    written.append(path)
    index = [_index_entry(file_name(r), r) for r in resources]
    for name, content in (("package.json", package_manifest()), (".index.json", {"index-version": 1, "files": index})):
        path = folder / name
        path.write_text(_dump(content), encoding="utf-8")
        written.append(path)
    return written
