"""Snapshots: base R4 from the compact model agrees with the official snapshots; profiles generate."""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import Any

import pytest

from escape_fhir.validation.definitions import Definitions
from escape_fhir.validation.sources import BaseR4Source
from tests.helpers import shared

Json = dict[str, Any]
FHIRPATH = "http://hl7.org/fhirpath/"


@cache
def official() -> dict[str, Json]:
    found: dict[str, Json] = {}
    for name in ("profiles-resources.json.gz", "profiles-types.json.gz"):
        with gzip.open(shared("fhir", "r4-core", name), "rt", encoding="utf-8") as f:
            for entry in json.load(f)["entry"]:
                res = entry["resource"]
                if res["resourceType"] == "StructureDefinition":
                    found[res["url"]] = res
    return found


def _type_codes(element: Json) -> list[str]:
    """Type codes as FHIR names: Element.id & co carry the FHIR type in an extension in the official files."""
    codes = []
    for t in element.get("type", []):
        code = t["code"]
        for ext in t.get("extension", []):
            if ext["url"].endswith("structuredefinition-fhir-type") and not element["path"].endswith(".value"):
                code = ext["valueUrl"]
        codes.append(code)
    return codes


def _summary(element: Json) -> tuple[Any, ...]:
    binding = element.get("binding", {})
    return (
        element["id"],
        element["path"],
        element["min"],
        element["max"],
        _type_codes(element),
        sorted(p for t in element.get("type", []) for p in t.get("targetProfile", [])),
        binding.get("strength"),
        binding.get("valueSet"),
        sorted(c["key"] for c in element.get("constraint", [])),
        element.get("contentReference"),
    )


BASE_TYPES = [
    "Patient",
    "Observation",
    "Questionnaire",
    "QuestionnaireResponse",
    "ServiceRequest",
    "Bundle",
    "MessageHeader",
    "Extension",
    "Identifier",
    "CodeableConcept",
    "Quantity",
    "SimpleQuantity",
    "string",
    "decimal",
]


@pytest.mark.parametrize("name", BASE_TYPES, ids=BASE_TYPES)
def test_base_snapshot_agrees_with_official_r4(name: str) -> None:
    url = Definitions.base_url(name)
    theirs = [_summary(e) for e in official()[url]["snapshot"]["element"]]
    ours = Definitions([BaseR4Source()]).snapshot(url)
    assert ours is not None
    assert [_summary(e) for e in ours] == theirs


def test_base_snapshot_keeps_constraint_expressions() -> None:
    ours = Definitions([BaseR4Source()]).snapshot("Patient")
    assert ours is not None
    pat1 = next(c for e in ours for c in e.get("constraint", []) if c["key"] == "pat-1")
    assert pat1["severity"] == "error"
    assert pat1["expression"] == "name.exists() or telecom.exists() or address.exists() or organization.exists()"


def test_unknown_urls_are_not_found() -> None:
    defs = Definitions([BaseR4Source()])
    assert defs.structure("http://example.org/StructureDefinition/nothing") is None
    assert defs.snapshot("http://example.org/StructureDefinition/nothing") is None
    assert defs.value_set("http://example.org/ValueSet/nothing") is None
    assert defs.snapshot("NoSuchType") is None


# ---- UK Core and BaRS -----------------------------------------------------------------------------------------

UKCORE = "https://fhir.hl7.org.uk/StructureDefinition/"
BARS = "https://fhir.nhs.uk/StructureDefinition/"


@cache
def nhs_definitions() -> tuple[Definitions, list[str]]:
    from escape_fhir.validation.crossversion import CrossVersionSource, builtin_extensions
    from escape_fhir.validation.sources import folder_source

    ukcore = folder_source(shared("fhir", "ukcore"))
    bars = folder_source(shared("fhir", "bars"))
    urls = ukcore.urls("StructureDefinition") + bars.urls("StructureDefinition")
    chain = Definitions([ukcore, bars, BaseR4Source(), builtin_extensions(), CrossVersionSource()])
    return chain, urls


def test_every_ukcore_and_bars_structure_snapshots_without_problems() -> None:
    defs, urls = nhs_definitions()
    assert len(urls) == 161
    failures = {url: defs.problems(url) for url in urls if defs.snapshot(url) is None or defs.problems(url)}
    assert failures == {}


def test_snapshot_ids_are_unique_and_paths_match_ids() -> None:
    from escape_fhir.validation.snapshot import unsliced

    defs, urls = nhs_definitions()
    for url in urls:
        elements = defs.snapshot(url) or []
        ids = [e["id"] for e in elements]
        assert len(ids) == len(set(ids)), url
        assert all(unsliced(e["id"]) == e["path"] for e in elements), url


NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
VERIFICATION = UKCORE + "Extension-UKCore-NHSNumberVerificationStatus"

# (profile, element id, expected keys of the snapshot element)
KEY_ELEMENTS = [
    pytest.param(
        "UKCore-Patient",
        "Patient.identifier",
        {
            "min": 0,
            "max": "*",
            "slicing": {"discriminator": [{"type": "value", "path": "system"}], "ordered": False, "rules": "open"},
        },
        id="patient-identifier-sliced-by-system",
    ),
    pytest.param(
        "UKCore-Patient",
        "Patient.identifier:nhsNumber",
        {"sliceName": "nhsNumber", "min": 0, "max": "1"},
        id="nhs-number-slice",
    ),
    pytest.param(
        "UKCore-Patient",
        "Patient.identifier:nhsNumber.system",
        {"min": 1, "max": "1", "fixedUri": NHS_NUMBER_SYSTEM, "type": [{"code": "uri"}]},
        id="nhs-number-system-fixed",
    ),
    pytest.param(
        "UKCore-Patient", "Patient.identifier:nhsNumber.value", {"min": 1, "max": "1"}, id="nhs-number-value-required"
    ),
    pytest.param(
        "UKCore-Patient",
        "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus",
        {"min": 0, "max": "1", "type": [{"code": "Extension", "profile": [VERIFICATION]}]},
        id="verification-status-extension-profile",
    ),
    pytest.param(
        "UKCore-Patient",
        "Patient.identifier:nhsNumber.use",
        {"binding": {"strength": "required", "valueSet": "http://hl7.org/fhir/ValueSet/identifier-use|4.0.1"}},
        id="unfolded-identifier-keeps-base-binding",
    ),
    pytest.param(
        "UKCore-Patient",
        "Patient.extension",
        {"slicing": {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"}},
        id="extensions-sliced-by-url",
    ),
    pytest.param("UKCore-Patient", "Patient.name", {"mustSupport": True}, id="must-support"),
    pytest.param(
        "UKCore-Organization",
        "Organization.identifier:odsOrganisationCode.system",
        {"min": 1, "max": "1", "fixedUri": "https://fhir.nhs.uk/Id/ods-organization-code"},
        id="ods-organisation-code",
    ),
    pytest.param(
        "UKCore-Organization",
        "Organization.identifier:odsSiteCode.system",
        {"fixedUri": "https://fhir.nhs.uk/Id/ods-site-code"},
        id="ods-site-code",
    ),
    pytest.param(
        "UKCore-Organization", "Organization.identifier:odsSiteCode", {"min": 0, "max": "1"}, id="ods-site-code-slice"
    ),
    pytest.param(
        "Extension-UKCore-NHSNumberVerificationStatus",
        "Extension.value[x]",
        {
            "min": 1,
            "type": [{"code": "CodeableConcept"}],
            "binding": {
                "strength": "required",
                "valueSet": "https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus",
            },
        },
        id="verification-status-value",
    ),
    pytest.param(
        "UKCore-Observation",
        "Observation.extension:triggeredByR5.extension:observation.value[x]",
        {
            "min": 1,
            "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Observation"]}],
        },
        id="constraint-inside-extension-profile-unfolds-it",
    ),
    pytest.param(
        "UKCore-Observation",
        "Observation.extension:triggeredByR5.extension",
        {"min": 2},
        id="extension-profile-cardinality-kept",
    ),
    pytest.param(
        BARS + "BARSMessageHeader-servicerequest-request",
        "MessageHeader.event[x].code",
        {"min": 1},
        id="bars-child-of-coding-in-choice",
    ),
    pytest.param(
        BARS + "BARSMessageHeader-servicerequest-request",
        "MessageHeader.sender.identifier.assigner.reference",
        {"min": 1, "type": [{"code": "string"}]},
        id="bars-deep-unfolding",
    ),
    pytest.param(
        "UKCore-Questionnaire",
        "Questionnaire.item.item",
        {"contentReference": "#Questionnaire.item"},
        id="content-reference-kept",
    ),
]


@pytest.mark.parametrize(("profile", "element_id", "expected"), KEY_ELEMENTS)
def test_key_elements(profile: str, element_id: str, expected: Json) -> None:
    defs, _ = nhs_definitions()
    url = profile if profile.startswith("https://") else UKCORE + profile
    elements = {e["id"]: e for e in defs.snapshot(url) or []}
    assert element_id in elements
    found = elements[element_id]
    assert {k: found.get(k) for k in expected} == expected


def test_ukcore_profile_keeps_base_constraints_and_order() -> None:
    defs, _ = nhs_definitions()
    ours = defs.snapshot(UKCORE + "UKCore-Patient") or []
    base = Definitions([BaseR4Source()]).snapshot("Patient") or []
    unsliced_ids = [e["id"] for e in ours if ":" not in e["id"] and e["id"] in {b["id"] for b in base}]
    assert unsliced_ids == [b["id"] for b in base]
    contact = next(e for e in ours if e["id"] == "Patient.contact")
    assert any(c["key"] == "pat-1" for c in contact["constraint"])
    assert ours[0]["constraint"] == base[0]["constraint"]
