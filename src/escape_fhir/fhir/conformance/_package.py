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
#: UK Core 2.0.0, under the name its own package.json gives (../shared/fhir/ukcore/package.json).
UKCORE_PACKAGE: Final = ("UKCore.R4.STU.02.00.00", "2.0.0")


def own_resources() -> list[Json]:
    """The StructureDefinitions, CodeSystems and ValueSets the project defines (not the Questionnaires)."""
    return [*referral_profiles(), *screening_profiles(), *terminology_resources(), *site_profiles()]


def conformance_resources() -> list[Json]:
    """Every conformance resource of the project, Questionnaires included, as fresh FHIR JSON dicts."""
    return [*own_resources(), *all_questionnaires()]


def file_name(resource: Json) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def package_manifest() -> Json:
    """``package.json``: what a FHIR tool needs to load the folder as a package and resolve its bases."""
    name, version = UKCORE_PACKAGE
    return {
        "name": PACKAGE_NAME,
        "version": __version__,
        "canonical": codes.BASE,
        "title": "ESCAPE-pain FHIR R4 conformance resources",
        "description": "Profiles, extensions, code systems, value sets and Questionnaires for ESCAPE-pain "
        "referrals (NHS England), derived from UK Core and aligned with BaRS.",
        "type": "Conformance",
        "fhirVersions": [codes.FHIR_VERSION],
        "dependencies": {"hl7.fhir.r4.core": codes.FHIR_VERSION, name: version},
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
    """Write every resource as ``<ResourceType>-<id>.json``, then ``package.json`` and ``.index.json``.

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
    index = [_index_entry(file_name(r), r) for r in conformance_resources()]
    for name, content in (("package.json", package_manifest()), (".index.json", {"index-version": 1, "files": index})):
        path = folder / name
        path.write_text(_dump(content), encoding="utf-8")
        written.append(path)
    return written
