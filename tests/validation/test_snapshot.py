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
