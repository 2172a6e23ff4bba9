"""Local terminology: what can be expanded from the definitions held, and what is left unknown."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from escape_fhir.validation.definitions import Definitions
from escape_fhir.validation.sources import BaseR4Source, MemorySource
from tests.helpers import shared

Json = dict[str, Any]
SNOMED = "http://snomed.info/sct"
CS = "https://example.org/CodeSystem/body"
VS = "https://example.org/ValueSet/"

# A small hierarchical code system: limb > arm > hand, limb > leg; and head.
BODY: Json = {
    "resourceType": "CodeSystem",
    "url": CS,
    "status": "active",
    "content": "complete",
    "concept": [
        {"code": "limb", "concept": [{"code": "arm", "concept": [{"code": "hand"}]}, {"code": "leg"}]},
        {"code": "head"},
    ],
}


def _vs(name: str, *includes: Json, exclude: tuple[Json, ...] = ()) -> Json:
    compose: Json = {"include": list(includes)}
    if exclude:
        compose["exclude"] = list(exclude)
    return {"resourceType": "ValueSet", "url": VS + name, "status": "active", "compose": compose}


VALUE_SETS = [
    _vs("all", {"system": CS}),
    _vs("limbs", {"system": CS, "filter": [{"property": "concept", "op": "is-a", "value": "limb"}]}),
    _vs("below-limb", {"system": CS, "filter": [{"property": "concept", "op": "descendent-of", "value": "limb"}]}),
    _vs("not-arm", {"system": CS, "filter": [{"property": "concept", "op": "is-not-a", "value": "arm"}]}),
    _vs("listed-snomed", {"system": SNOMED, "concept": [{"code": "239873007"}, {"code": "279039007"}]}),
    _vs("snomed-filter", {"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "404684003"}]}),
    _vs(
        "mixed",
        {"system": CS, "concept": [{"code": "head"}]},
        {"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "404684003"}]},
    ),
    _vs("import", {"valueSet": [VS + "limbs"]}, exclude=({"system": CS, "concept": [{"code": "hand"}]},)),
    _vs("import-unknown", {"valueSet": [VS + "nowhere"]}),
    _vs("gender-import", {"valueSet": ["http://hl7.org/fhir/ValueSet/administrative-gender"]}),
    _vs("loops", {"valueSet": [VS + "loops"]}),
]


@cache
def definitions() -> Definitions:
    return Definitions([MemorySource([BODY, *VALUE_SETS]), BaseR4Source()])


EXPANSIONS = [
    pytest.param("all", {CS: {"limb", "arm", "hand", "leg", "head"}}, id="whole-code-system"),
    pytest.param("limbs", {CS: {"limb", "arm", "hand", "leg"}}, id="is-a"),
    pytest.param("below-limb", {CS: {"arm", "hand", "leg"}}, id="descendent-of"),
    pytest.param("not-arm", {CS: {"limb", "leg", "head"}}, id="is-not-a"),
    pytest.param("listed-snomed", {SNOMED: {"239873007", "279039007"}}, id="listed-snomed-concepts"),
    pytest.param("snomed-filter", None, id="snomed-filter-unknown"),
    pytest.param("mixed", None, id="part-unknown"),
    pytest.param("import", {CS: {"limb", "arm", "leg"}}, id="value-set-import-and-exclude"),
    pytest.param("import-unknown", None, id="import-of-unknown-value-set"),
    pytest.param(
        "gender-import",
        {"http://hl7.org/fhir/administrative-gender": {"male", "female", "other", "unknown"}},
        id="base-r4-required-set",
    ),
    pytest.param("loops", None, id="circular-import"),
    pytest.param("missing", None, id="unknown-value-set"),
]


@pytest.mark.parametrize(("name", "expected"), EXPANSIONS)
def test_expand(name: str, expected: dict[str, set[str]] | None) -> None:
    found = definitions().expand(VS + name)
    assert (None if found is None else {k: set(v) for k, v in found.items()}) == expected


MEMBERSHIP = [
    pytest.param("limbs", CS, "hand", True, id="in-hierarchy"),
    pytest.param("limbs", CS, "head", False, id="outside-hierarchy"),
    pytest.param("limbs", "https://example.org/other", "hand", False, id="wrong-system"),
    pytest.param("limbs", None, "arm", True, id="no-system"),
    pytest.param("snomed-filter", SNOMED, "183516009", None, id="snomed-filter-is-unknown"),
    pytest.param("mixed", CS, "head", True, id="known-part-has-it"),
    pytest.param("mixed", CS, "arm", False, id="known-part-of-that-system-lacks-it"),
    pytest.param("mixed", SNOMED, "183516009", None, id="unknown-part-may-have-it"),
    pytest.param("missing", CS, "arm", None, id="unknown-value-set"),
]


@pytest.mark.parametrize(("name", "system", "code", "expected"), MEMBERSHIP)
def test_has_code(name: str, system: str | None, code: str, expected: bool | None) -> None:
    assert definitions().has_code(VS + name, system, code) is expected


# ---- UK Core -------------------------------------------------------------------------------------------------


@cache
def ukcore() -> Definitions:
    from escape_fhir.validation.sources import folder_source

    return Definitions([folder_source(shared("fhir", "ukcore")), BaseR4Source()])


UK = "https://fhir.hl7.org.uk/"
UKCORE_CASES = [
    pytest.param(
        "ValueSet/UKCore-NHSNumberVerificationStatus",
        UK + "CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
        "01",
        True,
        id="verification-england-01",
    ),
    pytest.param(
        "ValueSet/UKCore-NHSNumberVerificationStatus",
        UK + "CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
        "09",
        False,
        id="verification-england-09",
    ),
    pytest.param(
        "ValueSet/UKCore-NHSNumberVerificationStatus",
        "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
        "NI",
        True,
        id="verification-null-flavor",
    ),
    pytest.param(
        "ValueSet/UKCore-NHSNumberVerificationStatus",
        UK + "CodeSystem/UKCore-NHSNumberVerificationStatus",
        "number-present-and-verified",
        False,
        id="retired-bars-code-not-in-current-set",
    ),
    pytest.param(
        "ValueSet/UKCore-NHSNumberUnavailableReason",
        UK + "CodeSystem/UKCore-NHSNumberUnavailableReason",
        "overseas-patient",
        True,
        id="unavailable-reason",
    ),
    pytest.param("ValueSet/UKCore-SourceOfServiceRequest", SNOMED, "109721000000108", None, id="snomed-filter-unknown"),
    pytest.param("ValueSet/UKCore-ServiceRequestReasonCode", SNOMED, "239873007", None, id="snomed-reason-unknown"),
]


@pytest.mark.parametrize(("vs", "system", "code", "expected"), UKCORE_CASES)
def test_ukcore_membership(vs: str, system: str, code: str, expected: bool | None) -> None:
    assert ukcore().has_code(UK + vs, system, code) is expected


def test_ukcore_expansion_of_verification_status() -> None:
    found = ukcore().expand(UK + "ValueSet/UKCore-NHSNumberVerificationStatus")
    assert found is not None
    assert found[UK + "CodeSystem/UKCore-NHSNumberVerificationStatusEngland"] == frozenset(f"0{i}" for i in range(1, 9))
    assert found["http://terminology.hl7.org/CodeSystem/v3-NullFlavor"] == frozenset({"NI"})


def test_retired_verification_code_system_from_legacy_folder() -> None:
    from escape_fhir.validation.sources import folder_source

    legacy = folder_source(shared("fhir", "ukcore", "legacy"))
    cs = Definitions([legacy]).code_system(UK + "CodeSystem/UKCore-NHSNumberVerificationStatus")
    assert cs is not None and cs["status"] == "retired"
