"""The sender corpus itself (tests/fhir/sender_corpus.py): complete, covering every shape and family, valid FHIR,
and consistent with itself. What the reader makes of it is tested by the reader's own tests."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter, defaultdict
from datetime import date
from typing import Any

import jsonschema
import nhs_number
import pytest

from escape_fhir.domain.eligibility import CRITERIA
from escape_fhir.domain.startback import risk_for
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import Definitions, default_definitions
from escape_fhir.validation.sources import MemorySource
from tests.fhir.sender_corpus import (
    EXPECT_KEYS,
    FAMILIES,
    FOLDER,
    REFUSED_KEYS,
    SHAPES,
    Case,
    bundle_files,
    cases,
    refused,
)
from tests.helpers import ROOT, SHARED

Json = dict[str, Any]
CASES = cases()
EVERY = CASES + refused()
IDS = [c.name for c in CASES]
EVERY_IDS = [c.name for c in EVERY]
SCHEMA = json.loads((ROOT / "schemas" / "referral.schema.json").read_text())
SNOMED = "http://snomed.info/sct"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
OUTCOMES = {"met", "not-met", "unknown"}
#: Facts that are not fields of the input format: the reader adds the date of onset (issue 8).
EXTRA_FACTS = {"symptomOnsetDate"}


# --- 1. complete: enough Bundles, each with an expectation of the agreed form ---------------------------------
def test_at_least_34_accepted_bundles_and_two_refused() -> None:
    assert len(CASES) >= 34
    assert len(refused()) >= 2


def test_every_bundle_file_has_an_expectation() -> None:
    with_expectation = {c.path for c in EVERY}
    assert [p.name for p in bundle_files() if p not in with_expectation] == []


@pytest.mark.parametrize("case", EVERY, ids=EVERY_IDS)
def test_expectation_keys(case: Case) -> None:
    expect = case.expect
    if expect.get("refused"):
        assert set(expect) == REFUSED_KEYS and expect["refused"] is True
    else:
        assert set(expect) == EXPECT_KEYS
    assert expect["family"] in FAMILIES
    assert isinstance(expect["description"], str) and expect["description"]
    assert [s for s in expect["shapes"] if s not in SHAPES] == []
    assert len(set(expect["shapes"])) == len(expect["shapes"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_facts_are_fields_of_the_input_format(case: Case) -> None:
    """Each fact is a dotted path of schemas/referral.schema.json and its value fits that field."""
    facts = case.expect["facts"]
    assert facts["pathway"] in ("knee-hip", "back")
    for key, value in facts.items():
        if key in EXTRA_FACTS:
            date.fromisoformat(value)
            continue
        if key == "diagnoses":  # SNOMED CT codes only (order free); the input format carries {code, display}
            value = [{"code": code} for code in value]
        jsonschema.validate(value, _field_schema(key))
    if "affectedSites" in facts:
        assert facts["affectedSites"] == sorted(facts["affectedSites"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_criteria_and_locations(case: Case) -> None:
    """Criteria are the project's criterion codes; every ``where`` and ``warnings`` location exists in the Bundle."""
    expect = case.expect
    assert expect["criteria"], "every Bundle states the outcome of at least one criterion"
    assert set(expect["criteria"]) <= set(CRITERIA)
    assert set(expect["criteria"].values()) <= OUTCOMES
    assert set(expect["where"]) <= set(expect["facts"])
    bundle = case.bundle()
    missing = [loc for loc in [*expect["where"].values(), *expect["warnings"]] if not _exists(bundle, loc)]
    assert missing == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_facts_agree_with_each_other(case: Case) -> None:
    """Duration from a date of onset is the whole months to the referral date; STarT Back risk follows the scores."""
    facts = case.expect["facts"]
    authored = _service_request(case.bundle()).get("authoredOn", "")[:10]
    if "symptomOnsetDate" in facts and "symptomDurationMonths" in facts:
        assert facts["symptomDurationMonths"] == _whole_months(facts["symptomOnsetDate"], authored)
    if "startBackResult" in facts:
        result = facts["startBackResult"]
        assert result["risk"] == risk_for(result["total"], result["psychosocial"]).value
    if "conflict" in case.expect["shapes"]:
        assert "unknown" in case.expect["criteria"].values(), "a conflict leaves its criterion for review"
    if "missing-detail" in case.expect["shapes"]:
        assert list(case.expect["criteria"].values()).count("unknown") >= 2


# --- 2. coverage: each shape twice, each family both pathways, formats and Bundle types --------------------------
def test_each_shape_is_used_at_least_twice() -> None:
    used = Counter(s for c in CASES for s in c.expect["shapes"])
    assert {s: used[s] for s in SHAPES if used[s] < 2} == {}
    assert used["conflict"] >= 3
    assert used["missing-detail"] >= 3


def test_each_family_covers_both_pathways() -> None:
    pathways: dict[str, set[str]] = defaultdict(set)
    for c in CASES:
        pathways[c.expect["family"]].add(c.expect["facts"]["pathway"])
    assert {f: sorted(pathways[f]) for f in FAMILIES if pathways[f] != {"knee-hip", "back"}} == {}


def test_formats_and_bundle_types() -> None:
    assert sum(c.format == "xml" for c in CASES) >= 10
    assert {c.bundle()["type"] for c in CASES} == {"message", "transaction", "collection"}


def test_ours_are_the_project_examples_unchanged() -> None:
    ours = [c for c in CASES if c.expect["family"] == "ours"]
    assert len(ours) == 2
    for case in ours:
        source = ROOT / "examples" / "bundles" / re.sub(r"^ours-", "", case.path.stem + ".message" + case.path.suffix)
        assert case.path.read_bytes() == source.read_bytes()


# --- 3. valid FHIR: no error from the project's validator, with UK Core and BaRS where present ----------------------
@functools.cache
def _validator(with_shared: bool) -> Validator:
    packages = [SHARED / "fhir" / "ukcore", SHARED / "fhir" / "bars"] if with_shared else []
    return Validator(default_definitions(packages, package_cache=False))


def _errors(validator: Validator, resource: Json) -> list[str]:
    return [f"{i.location}: {i.message}" for i in validator.validate(resource).errors]


@pytest.mark.parametrize("case", EVERY, ids=EVERY_IDS)
def test_validates_against_base_r4_and_project_profiles(case: Case) -> None:
    assert _errors(_validator(False), case.bundle()) == []


@pytest.mark.parametrize("case", EVERY, ids=EVERY_IDS)
def test_validates_with_uk_core_and_bars(case: Case) -> None:
    for folder in ("ukcore", "bars"):
        if not (SHARED / "fhir" / folder).is_dir():
            pytest.skip(f"reference data {SHARED / 'fhir' / folder} is not present (developer and CI machines only)")
    assert _errors(_validator(True), case.bundle()) == []


def _sender_forms(case: Case) -> list[tuple[Json, list[Json]]]:
    """Each QuestionnaireResponse whose Questionnaire travels with it (a Bundle entry or contained), with the
    Questionnaires at hand; a contained one is named by its canonical so that the validator can find it."""
    resources = [e["resource"] for e in case.bundle().get("entry", [])]
    out = []
    for qr in (r for r in resources if r["resourceType"] == "QuestionnaireResponse"):
        forms = [r for r in resources if r["resourceType"] == "Questionnaire"] + qr.get("contained", [])
        if qr["questionnaire"].startswith("#"):
            form = next(f for f in forms if f.get("id") == qr["questionnaire"][1:])
            qr = {k: v for k, v in qr.items() if k != "contained"} | {
                "questionnaire": f"{form['url']}|{form['version']}"
            }
        if any(f"{f['url']}|{f.get('version')}" == qr["questionnaire"] for f in forms):
            out.append((qr, forms))
    return out


WITH_FORMS = [c for c in CASES if _sender_forms(c)]


def test_every_sender_linkid_response_has_its_questionnaire_at_hand() -> None:
    shaped = {c.name for c in CASES if "startback-qr-sender-linkids" in c.expect["shapes"]}
    assert shaped and shaped <= {c.name for c in WITH_FORMS}


@pytest.mark.parametrize("case", WITH_FORMS, ids=[c.name for c in WITH_FORMS])
def test_sender_responses_fit_their_own_questionnaire(case: Case) -> None:
    """The validator does not look inside a Bundle for a Questionnaire, so give it one whose definitions hold the
    Bundle's: then the sender's answers are checked against the sender's form (linkIds, answer options)."""
    for qr, forms in _sender_forms(case):
        definitions = Definitions([MemorySource(forms), *default_definitions(package_cache=False).sources])
        result = Validator(definitions).validate(qr)
        assert [f"{i.location}: {i.message}" for i in result.issues if "is unknown" in i.message] == []
        assert _errors(Validator(definitions), qr) == []


def test_the_checks_can_fail() -> None:
    """Break one thing in a copy of a corpus Bundle: the validator reports it at its location, and a location that
    is not in the Bundle is not found."""
    case = next(c for c in CASES if c.name == "gp-emis-knee-right")
    bundle = case.bundle()
    at = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Patient")
    identifier = bundle["entry"][at]["resource"]["identifier"][0]
    identifier["value"] = identifier["value"][:-1] + str((int(identifier["value"][-1]) + 1) % 10)
    assert f"Bundle.entry[{at}].resource.identifier[0].value" in [
        i.location for i in _validator(False).validate(bundle).errors
    ]
    assert _exists(bundle, f"Bundle.entry[{at}].resource.identifier[0].value")
    assert not _exists(bundle, f"Bundle.entry[{at}].resource.bodySite")
    assert not _exists(bundle, f"Bundle.entry[{len(bundle['entry'])}].resource")


# --- 4. identifiers: NHS numbers from the test range with a valid check digit; BaRS message rules -----------------
@pytest.mark.parametrize("case", EVERY, ids=EVERY_IDS)
def test_nhs_numbers_are_valid_test_numbers(case: Case) -> None:
    text = json.dumps(case.bundle(), default=str)
    numbers = set(re.findall(r'"system": "https://fhir\.nhs\.uk/Id/nhs-number", "value": "(\d+)"', text))
    numbers |= set(re.findall(r"nhs-number\|(\d+)", text))
    assert numbers, "every Bundle names its patient by NHS number"
    assert {n for n in numbers if not (nhs_number.is_valid(n) and n.startswith("999"))} == set()
    if "facts" in case.expect:
        assert case.expect["facts"]["patient.nhsNumber"] in numbers


def test_patients_are_distinct() -> None:
    numbers = [c.expect["facts"]["patient.nhsNumber"] for c in CASES if c.expect["family"] != "ours"]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("case", [c for c in EVERY if c.bundle()["type"] == "message"], ids=lambda c: c.name)
def test_message_bundles_follow_bars(case: Case) -> None:
    """MessageHeader first with the BaRS event, focus = the ServiceRequest, urn:uuid fullUrls, meta.lastUpdated
    everywhere, and a ServiceRequest with status, intent, subject and authoredOn (nhs-standards.md 1.3-1.5)."""
    bundle = case.bundle()
    entries = bundle["entry"]
    header = entries[0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    assert header["eventCoding"]["system"] == "https://fhir.nhs.uk/CodeSystem/message-events-bars"
    assert header["eventCoding"]["code"] == "servicerequest-request"
    focus = [e["resource"] for e in entries if e["fullUrl"] == header["focus"][0]["reference"]]
    assert [r["resourceType"] for r in focus] == ["ServiceRequest"]
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in entries)
    assert [e["fullUrl"] for e in entries if "lastUpdated" not in e["resource"].get("meta", {})] == []
    assert {"status", "intent", "subject", "authoredOn"} <= set(focus[0])


# --- 5. every SNOMED CT code used is listed, with its source, in the README ----------------------------------------
def test_snomed_codes_are_documented() -> None:
    readme = (FOLDER / "README.md").read_text()
    documented = set(re.findall(r"^\| `?(\d{6,18})`? \|", readme, re.MULTILINE))
    used: set[str] = set()
    for case in EVERY:
        _snomed_codes(case.bundle(), used)
    assert sorted(used - documented) == []


# --- helpers ---------------------------------------------------------------------------------------------------------
def _field_schema(path: str) -> Json:
    """The JSON Schema of one dotted field of the referral input format, with the $defs it refers to."""
    node: Json = SCHEMA
    for part in path.split("."):
        node = _deref(node)
        assert part in node.get("properties", {}), f"{path}: {part!r} is not a field of the referral input format"
        node = node["properties"][part]
    return {"$defs": SCHEMA["$defs"], **node}


def _deref(node: Json) -> Json:
    for branch in node.get("anyOf", []):
        if "$ref" in branch or "properties" in branch:
            node = branch
    if "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _exists(bundle: Json, location: str) -> bool:
    """Whether a FHIRPath prefix like ``Bundle.entry[3].resource.contained[0].bodySite`` names an element."""
    node: Any = bundle
    for part in location.split(".")[1:]:
        name, _, index = part.partition("[")
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
        if index:
            i = int(index.rstrip("]"))
            if not isinstance(node, list) or i >= len(node):
                return False
            node = node[i]
    return True


def _service_request(bundle: Json) -> Json:
    found = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"]
    assert len(found) == 1
    return found[0]


def _whole_months(start: str, end: str) -> int:
    a, b = date.fromisoformat(start), date.fromisoformat(end)
    return (b.year - a.year) * 12 + b.month - a.month - (1 if b.day < a.day else 0)


def _snomed_codes(node: Any, out: set[str]) -> None:
    """Every SNOMED CT concept id in a resource; a post-coordinated expression gives each of its concepts."""
    if isinstance(node, dict):
        if node.get("system") == SNOMED and isinstance(node.get("code"), str):
            out.update(re.findall(r"\d{6,18}", node["code"]))
        for value in node.values():
            _snomed_codes(value, out)
    elif isinstance(node, list):
        for value in node:
            _snomed_codes(value, out)
