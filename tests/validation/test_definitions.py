"""The Definitions chain: first source wins, None for what no source holds, problems instead of exceptions."""

from __future__ import annotations

from typing import Any

import pytest

from escape_fhir.fhir.r4model import model
from escape_fhir.validation.crossversion import CrossVersionSource, builtin_extensions, cross_version_extension
from escape_fhir.validation.definitions import Definitions, split_canonical
from escape_fhir.validation.sources import BaseR4Source, MemorySource

Json = dict[str, Any]
EX = "https://example.org/StructureDefinition/"


def _profile(name: str, base: str, *elements: Json, version: str = "1.0.0") -> Json:
    return {
        "resourceType": "StructureDefinition",
        "url": EX + name,
        "version": version,
        "name": name,
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": base,
        "derivation": "constraint",
        "differential": {"element": [{"id": "Patient", "path": "Patient"}, *elements]},
    }


def _chain(*resources: Json) -> Definitions:
    return Definitions([MemorySource(resources), BaseR4Source(), builtin_extensions(), CrossVersionSource()])


def test_first_source_wins() -> None:
    first = _profile("p", "http://hl7.org/fhir/StructureDefinition/Patient", version="1")
    second = _profile("p", "http://hl7.org/fhir/StructureDefinition/Patient", version="2")
    defs = Definitions([MemorySource([first]), MemorySource([second])])
    assert defs.structure(EX + "p") is first
    assert defs.structure(EX + "p|2") is second
    assert [r["version"] for r in defs.all("StructureDefinition")] == ["1", "2"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://x/vs", ("http://x/vs", None), id="plain"),
        pytest.param("http://x/vs|1.2", ("http://x/vs", "1.2"), id="versioned"),
    ],
)
def test_split_canonical(url: str, expected: tuple[str, str | None]) -> None:
    assert split_canonical(url) == expected


UNKNOWN = [
    pytest.param("structure", id="structure"),
    pytest.param("snapshot", id="snapshot"),
    pytest.param("value_set", id="value-set"),
    pytest.param("code_system", id="code-system"),
    pytest.param("questionnaire", id="questionnaire"),
    pytest.param("expand", id="expand"),
]


@pytest.mark.parametrize("method", UNKNOWN)
def test_unknown_urls_answer_none(method: str) -> None:
    assert getattr(_chain(), method)("https://example.org/nothing/here") is None


def test_profile_chain_and_differential_merge() -> None:
    base = _profile(
        "base",
        "http://hl7.org/fhir/StructureDefinition/Patient",
        {
            "id": "Patient.name",
            "path": "Patient.name",
            "min": 1,
            "constraint": [{"key": "x-1", "severity": "error", "human": "x", "expression": "true"}],
        },
        {
            "id": "Patient.gender",
            "path": "Patient.gender",
            "binding": {"strength": "required", "valueSet": "https://example.org/ValueSet/g"},
        },
    )
    derived = _profile("derived", EX + "base", {"id": "Patient.name", "path": "Patient.name", "max": "1"})
    defs = _chain(base, derived)
    elements = {e["id"]: e for e in defs.snapshot(EX + "derived") or []}
    name = elements["Patient.name"]
    assert (name["min"], name["max"]) == (1, "1")
    assert [c["key"] for c in name["constraint"]] == ["ele-1", "x-1"]
    assert elements["Patient.gender"]["binding"] == {
        "strength": "required",
        "valueSet": "https://example.org/ValueSet/g",
    }
    assert defs.snapshot(EX + "derived") is defs.snapshot(EX + "derived")


def test_choice_rename_and_type_slice() -> None:
    observation = {
        **_profile("obs", "http://hl7.org/fhir/StructureDefinition/Observation"),
        "type": "Observation",
        "differential": {
            "element": [
                {"id": "Observation", "path": "Observation"},
                {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity", "min": 1},
                {
                    "id": "Observation.valueQuantity.system",
                    "path": "Observation.valueQuantity.system",
                    "fixedUri": "http://unitsofmeasure.org",
                },
                {
                    "id": "Observation.effective[x]:effectiveDateTime",
                    "path": "Observation.effective[x]",
                    "sliceName": "effectiveDateTime",
                },
            ]
        },
    }
    defs = _chain(observation)
    elements = {e["id"]: e for e in defs.snapshot(EX + "obs") or []}
    assert defs.problems(EX + "obs") == []
    value = elements["Observation.value[x]"]
    assert (value["min"], value["type"]) == (1, [{"code": "Quantity"}])
    assert elements["Observation.value[x].system"]["fixedUri"] == "http://unitsofmeasure.org"
    assert elements["Observation.effective[x]"]["slicing"]["discriminator"] == [{"type": "type", "path": "$this"}]
    assert elements["Observation.effective[x]:effectiveDateTime"]["type"] == [{"code": "dateTime"}]


BROKEN = [
    pytest.param(
        {**_profile("no-base", EX + "missing"), "type": ""}, "not-found", "base definition", id="missing-base"
    ),
    pytest.param(
        _profile(
            "bad-path",
            "http://hl7.org/fhir/StructureDefinition/Patient",
            {"id": "Patient.nothing", "path": "Patient.nothing"},
        ),
        "structure",
        "Patient.nothing",
        id="unknown-element",
    ),
    pytest.param(_profile("loop", EX + "loop"), "structure", "circular", id="circular-base"),
    pytest.param(
        _profile(
            "unsliced",
            "http://hl7.org/fhir/StructureDefinition/Patient",
            {"id": "Patient.name:x", "path": "Patient.name", "sliceName": "x"},
        ),
        "structure",
        "without a slicing",
        id="slice-without-slicing",
    ),
]


@pytest.mark.parametrize(("profile", "code", "text"), BROKEN)
def test_broken_profiles_give_problems_not_exceptions(profile: Json, code: str, text: str) -> None:
    defs = _chain(profile)
    defs.snapshot(profile["url"])
    problems = defs.problems(profile["url"])
    assert problems and problems[0].code == code and text in problems[0].message


def test_builtin_item_weight_extension() -> None:
    snapshot = _chain().snapshot("http://hl7.org/fhir/StructureDefinition/itemWeight") or []
    value = next(e for e in snapshot if e["id"] == "Extension.value[x]")
    assert value["type"] == [{"code": "decimal"}]


def test_core_extension_from_model() -> None:
    defs = _chain()
    sd = defs.structure("http://hl7.org/fhir/StructureDefinition/patient-birthPlace")
    assert sd is not None and sd["context"] == [{"type": "element", "expression": "Patient"}]
    value = next(e for e in defs.snapshot(sd["url"]) or [] if e["id"] == "Extension.value[x]")
    assert value["type"] == [{"code": "Address"}]


CROSS_VERSION = [
    pytest.param("Observation.triggeredBy", None, None, id="new-in-r5-any-value"),
    pytest.param("Patient.gender", [{"code": "code"}], "0", id="same-path-in-r4-typed"),
    pytest.param("Patient.contact", None, "*", id="backbone-is-complex"),
]


@pytest.mark.parametrize(("path", "value_types", "extension_max"), CROSS_VERSION)
def test_cross_version_extension(path: str, value_types: list[Json] | None, extension_max: str | None) -> None:
    url = f"http://hl7.org/fhir/5.0/StructureDefinition/extension-{path}"
    defs = _chain()
    elements = {e["id"]: e for e in defs.snapshot(url) or []}
    assert elements["Extension.url"]["fixedUri"] == url
    assert defs.structure(url)["context"] == [{"type": "element", "expression": path.rpartition(".")[0]}]  # type: ignore[index]
    if value_types is not None:
        assert elements["Extension.value[x]"]["type"] == value_types
    if extension_max is not None:
        assert elements["Extension.extension"]["max"] == extension_max
    if path == "Patient.contact":
        assert elements["Extension.value[x]"]["max"] == "0"


def test_cross_version_only_for_the_version_pattern() -> None:
    source = CrossVersionSource()
    assert (
        source.resource("StructureDefinition", "http://hl7.org/fhir/StructureDefinition/extension-Patient.gender")
        is None
    )
    assert source.resource("ValueSet", "http://hl7.org/fhir/5.0/StructureDefinition/extension-Patient.gender") is None
    assert cross_version_extension("http://hl7.org/fhir/4.3/StructureDefinition/extension-Patient.gender", model())[
        "url"
    ].endswith("Patient.gender")


def test_missing_base_profile_falls_back_to_base_r4_type_with_warnings() -> None:
    profile = _profile(
        "on-missing",
        EX + "missing",
        {"id": "Patient.identifier:nhs", "path": "Patient.identifier", "sliceName": "nhs"},
        {"id": "Patient.gender", "path": "Patient.gender", "min": 1},
    )
    defs = _chain(profile)
    elements = {e["id"]: e for e in defs.snapshot(profile["url"]) or []}
    assert elements["Patient.gender"]["min"] == 1
    problems = defs.problems(profile["url"])
    assert [p.severity for p in problems] == ["warning", "warning"]
    assert "not available" in problems[0].message and "without a slicing" in problems[1].message


def test_project_profiles_snapshot_on_ukcore_without_problems() -> None:
    from escape_fhir.validation.definitions import default_definitions
    from tests.helpers import shared

    defs = default_definitions([shared("fhir", "ukcore")], package_cache=False)
    own = [sd["url"] for sd in defs.sources[0].all("StructureDefinition")]
    assert own, "the project defines profiles"
    assert {url: defs.problems(url) for url in own if defs.snapshot(url) is None or defs.problems(url)} == {}
    assert defs.source_problems() == []
