"""The project's conformance resources: well-formed R4, resolvable references, conventional differentials,
codes that match what the translator emits, invariants that hold on every example and catch what they
name, meta.profile per resource kind, and a profiles/ folder that loads as a FHIR package.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy import evaluate
from fhirpathpy.models import models

from escape_fhir import __version__
from escape_fhir.domain import load_referral
from escape_fhir.domain.eligibility import CRITERIA, Decision, Outcome
from escape_fhir.domain.referral import Pathway, ReferralSource, Referrer, Site
from escape_fhir.domain.startback import AGREE_ANSWERS, BOTHERSOME_ANSWERS
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.conformance import PACKAGE_NAME, conformance_resources, file_name, package_manifest
from escape_fhir.fhir.r4model import ElementDef, model
from escape_fhir.validation.sources import PACKAGE_ALIASES
from tests.helpers import EXAMPLES, REFERRAL_EXAMPLES, ROOT, shared

Json = dict[str, Any]
RESOURCES = conformance_resources()
BY_URL = {r["url"]: r for r in RESOURCES}
PROFILES = [r for r in RESOURCES if r["resourceType"] == "StructureDefinition"]
CODE_SYSTEMS = {r["url"]: r for r in RESOURCES if r["resourceType"] == "CodeSystem"}
FOLDER = ROOT / "profiles"
STAMP = "2026-11-26T10:15:00Z"
#: Code systems the project binds to but does not define (LOINC, BaRS, FHIR R4).
EXTERNAL_SYSTEMS = {
    codes.LOINC,
    codes.CS_MESSAGE_REASON_BARS,
    "http://hl7.org/fhir/request-status",
    "http://hl7.org/fhir/questionnaire-answers-status",
    "http://hl7.org/fhir/observation-status",
    codes.SNOMED,  # the red flags and exclusions (ValueSet red-flags)
}


def _ids(resources: list[Json]) -> list[str]:
    return [file_name(r) for r in resources]


# --- every resource -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", RESOURCES, ids=_ids(RESOURCES))
def test_resource_is_valid_r4(resource: Json) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_canonicals_are_unique_and_under_the_base() -> None:
    urls = [r["url"] for r in RESOURCES]
    assert len(urls) == len(set(urls))
    for resource in RESOURCES:
        assert resource["url"] == f"{codes.BASE}/{resource['resourceType']}/{resource['id']}"
    assert len({file_name(r) for r in RESOURCES}) == len(RESOURCES)


@pytest.mark.parametrize("sd", PROFILES, ids=_ids(PROFILES))
def test_structure_definition_header(sd: Json) -> None:
    assert sd["fhirVersion"] == "4.0.1" and sd["status"] == "active" and sd["derivation"] == "constraint"
    assert sd["abstract"] is False and sd["version"] == __version__
    assert re.fullmatch(r"[A-Z][A-Za-z0-9_]{0,254}", sd["name"])  # R4 inv sdf-0 (computer-friendly name)
    assert "snapshot" not in sd and sd["differential"]["element"][0]["id"] == sd["type"]
    if sd["type"] == "Extension":
        assert sd["kind"] == "complex-type" and sd["context"]
    else:
        assert sd["kind"] == "resource"
        assert sd["baseDefinition"] == f"{codes.UKCORE}/UKCore-{sd['type']}"


# --- references between resources ---------------------------------------------------------------------------


def _references(sd: Json) -> Iterator[tuple[str, str]]:
    """(kind, canonical) of every binding, type profile and target profile in a differential."""
    for el in sd["differential"]["element"]:
        if "binding" in el:
            yield "valueSet", el["binding"]["valueSet"]
        for t in el.get("type", []):
            yield from (("profile", p) for p in t.get("profile", []))
            yield from (("targetProfile", p) for p in t.get("targetProfile", []))


@pytest.mark.parametrize("sd", PROFILES, ids=_ids(PROFILES))
def test_references_resolve(sd: Json) -> None:
    for kind, url in _references(sd):
        if url.startswith(codes.BASE):
            assert url in BY_URL, f"{kind} {url} is not one of the project's resources"
            wanted = "ValueSet" if kind == "valueSet" else "StructureDefinition"
            assert BY_URL[url]["resourceType"] == wanted
        else:  # base R4 resource types only; UK Core and other packages are not referenced here
            assert kind == "targetProfile" and url.startswith("http://hl7.org/fhir/StructureDefinition/"), url
            assert model().is_resource_type(url.rsplit("/", 1)[1])


def test_value_sets_include_known_systems() -> None:
    for vs in (r for r in RESOURCES if r["resourceType"] == "ValueSet"):
        for include in vs["compose"]["include"]:
            system = include["system"]
            assert system in CODE_SYSTEMS or system in EXTERNAL_SYSTEMS, f"{vs['id']}: {system}"
            if system in CODE_SYSTEMS:  # a project ValueSet takes all codes of its own system
                assert "concept" not in include and CODE_SYSTEMS[system]["valueSet"] == vs["url"]
            else:
                assert include["concept"], f"{vs['id']}: an external system's codes are listed"


def _nested_codes(concepts: list[Json]) -> Iterator[str]:
    for concept in concepts:  # R4 code systems nest concepts (observation-status: amended > corrected)
        yield concept["code"]
        yield from _nested_codes(concept.get("concept", []))


def _external_codes(system: str) -> set[str]:
    """The codes of a FHIR R4 or BaRS code system, from the reference data in ../shared."""
    if system.startswith("http://hl7.org/fhir/"):
        with gzip.open(shared("fhir", "r4-core", "valuesets.json.gz")) as f:
            bundle = json.load(f)
        cs = next(e["resource"] for e in bundle["entry"] if e["resource"].get("url") == system)
        return set(_nested_codes(cs["concept"]))
    root = ET.parse(shared("fhir", "bars", "CodeSystem", "BARS-message-reason.xml")).getroot()
    ns = {"f": "http://hl7.org/fhir"}
    assert root.find("f:url", ns).get("value") == system  # type: ignore[union-attr]
    return {c.get("value", "") for c in root.findall("f:concept/f:code", ns)}


# No LOINC or SNOMED CT release is in ../shared: the red-flag SNOMED CT ids are checked by their check digit
# and against their sources in tests/domain/test_red_flags.py.
@pytest.mark.parametrize("system", sorted(EXTERNAL_SYSTEMS - {codes.LOINC, codes.SNOMED}))
def test_listed_external_codes_exist(system: str) -> None:
    known = _external_codes(system)
    for vs in (r for r in RESOURCES if r["resourceType"] == "ValueSet"):
        for include in vs["compose"]["include"]:
            if include["system"] == system:
                assert {c["code"] for c in include["concept"]} <= known, vs["id"]


@cache
def _ukcore_urls() -> frozenset[str]:
    folder = shared("fhir", "ukcore", "structuredefinitions")
    ns = {"f": "http://hl7.org/fhir"}
    urls = set()
    for path in folder.glob("*.xml"):
        url = ET.parse(path).getroot().find("f:url", ns)
        if url is not None:
            urls.add(url.get("value", ""))
    return frozenset(urls)


@pytest.mark.parametrize("sd", PROFILES, ids=_ids(PROFILES))
def test_base_definition_is_a_ukcore_or_r4_profile(sd: Json) -> None:
    base = sd["baseDefinition"]
    if base.startswith("http://hl7.org/fhir/StructureDefinition/"):
        assert model().structure(base.rsplit("/", 1)[1]) is not None
    else:
        assert base in _ukcore_urls()


# --- differentials are conventional ------------------------------------------------------------------------


def _resolve(sd: Json, element_id: str) -> tuple[tuple[tuple[int, int], ...], ElementDef]:
    """The base definition of a differential element, and where it stands in the base: per path segment,
    (order among siblings, slice rank), so that sorting the keys gives the definition order."""
    m = model()
    context: tuple[str, str] | None = (sd["type"], sd["type"])
    element = m.element(sd["type"])
    assert element is not None
    key: list[tuple[int, int]] = []
    slice_ranks: dict[str, int] = {}
    segments = element_id.split(".")[1:]
    for depth, segment in enumerate(segments):
        name, _, slice_name = segment.partition(":")
        assert context is not None, f"{element_id}: no children under {segments[:depth]}"
        children = m.children(*context)
        order = next((i for i, el in enumerate(children) if el.name == name), None)
        assert order is not None, f"{element_id}: {name} is not an element of {context[1]}"
        element = children[order]
        prefix = ".".join(segments[: depth + 1])
        key.append((order, slice_ranks.setdefault(prefix, len(slice_ranks) + 1) if slice_name else 0))
        instance_name = element.choice_name(element.types[0].code) if element.is_choice else name
        ref = m.child(*context, instance_name)
        context = ref.context if ref else None
    return tuple(key), element


@pytest.mark.parametrize("sd", PROFILES, ids=_ids(PROFILES))
def test_differential_follows_the_base_order(sd: Json) -> None:
    ids = [el["id"] for el in sd["differential"]["element"]]
    positions = [_resolve(sd, i)[0] for i in ids]
    assert positions == sorted(positions), ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("sd", PROFILES, ids=_ids(PROFILES))
def test_slices_follow_their_slicing(sd: Json) -> None:
    seen: dict[str, Json] = {}
    for el in sd["differential"]["element"]:
        assert el["path"] == re.sub(r":[^.]+", "", el["id"])
        if ":" in el["id"].rsplit(".", 1)[-1]:
            sliced = el["id"].rsplit(":", 1)[0]
            assert "slicing" in seen.get(sliced, {}), f"{el['id']}: slicing is declared on {sliced} before it"
            assert el["sliceName"] == el["id"].rsplit(":", 1)[1]
            # The sliced element is at least as required as its slices together.
            slices = [s for i, s in seen.items() if re.fullmatch(re.escape(sliced) + r":[^.:]+", i)]
            required = sum(s.get("min", 0) for s in slices)
            assert seen[sliced].get("min", 0) >= required + el.get("min", 0), el["id"]
        seen[el["id"]] = el


def _value_type(key: str) -> str:
    """The type a fixed[x]/pattern[x] key names: fixedUri -> uri, patternCodeableConcept -> CodeableConcept."""
    name = key.removeprefix("fixed").removeprefix("pattern")
    primitive = name[0].lower() + name[1:]
    return primitive if model().is_primitive(primitive) else name


@pytest.mark.parametrize("sd", PROFILES, ids=_ids(PROFILES))
def test_types_and_fixed_values_fit_the_base(sd: Json) -> None:
    for el in sd["differential"]["element"]:
        base = {t.code for t in _resolve(sd, el["id"])[1].types}
        own = {t["code"] for t in el.get("type", [])}
        assert own <= base, f"{el['id']}: {own} is not a restriction of {base}"
        for key in el:
            if key.startswith(("fixed", "pattern")):
                assert _value_type(key) in (own or base), f"{el['id']}: {key} does not fit {own or base}"
        if el.get("min", 0) > 0 and "max" in el:
            assert el["max"] == "*" or int(el["max"]) >= el["min"]


# --- code systems: derived from the domain, and covering what the translator emits ----------------------------


@pytest.mark.parametrize(
    ("system", "domain_codes"),
    [
        pytest.param(codes.CS_PROGRAMME, [p.value for p in Pathway], id="programme"),
        pytest.param(codes.CS_CRITERION, list(CRITERIA), id="eligibility-criterion"),
        pytest.param(codes.CS_CRITERION_OUTCOME, [o.value for o in Outcome], id="criterion-outcome"),
        pytest.param(codes.CS_DECISION, [d.value for d in Decision], id="decision"),
        pytest.param(codes.CS_REFERRAL_SOURCE, [s.value for s in ReferralSource], id="referral-source"),
        pytest.param(codes.CS_SITE, [s.value for s in Site], id="affected-site"),
        pytest.param(codes.CS_REFERRER_ROLE, list(get_args(Referrer.model_fields["role"].annotation)), id="role"),
        pytest.param(codes.CS_STARTBACK_ANSWER, [*AGREE_ANSWERS, *BOTHERSOME_ANSWERS], id="startback-answer"),
    ],
)
def test_code_system_has_every_domain_code(system: str, domain_codes: list[str]) -> None:
    cs = CODE_SYSTEMS[system]
    assert [c["code"] for c in cs["concept"]] == domain_codes
    assert cs["count"] == len(domain_codes) and cs["content"] == "complete" and cs["caseSensitive"] is True
    assert all(c["display"] and c["definition"] for c in cs["concept"])


def _codings(value: Any) -> Iterator[Json]:
    if isinstance(value, dict):
        if isinstance(value.get("system"), str) and "code" in value:  # a Coding (OperationDefinition.system is not)
            yield value
        for child in value.values():
            yield from _codings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _codings(child)


def _translated() -> Iterator[Json]:
    for source in REFERRAL_EXAMPLES:
        referral = load_referral(source.read_bytes())
        for kind in ("message", "transaction", "collection"):
            yield translate(referral, kind, timestamp=STAMP)


def _site_directory() -> Iterator[Json]:
    """What the site directory emits: the example sites' resources and a Task's routing inputs."""
    from escape_fhir.sites.hub import routing_inputs
    from escape_fhir.sites.importer import read_sites
    from escape_fhir.sites.postcode import parse_postcode
    from escape_fhir.sites.resources import site_resources
    from escape_fhir.sites.routing import Directory, route

    sites = read_sites((ROOT / "examples/sites/directory/sites.csv").read_bytes(), "csv")
    for site in sites:
        yield from site_resources(site)
    for postcode in ("LS6 2AB", "LS9 9AB"):
        routing = route(Directory(sites), "knee-hip", parse_postcode(postcode), "gp")
        yield {"resourceType": "Task", "input": routing_inputs(routing)}


def test_every_project_code_the_translator_emits_is_defined() -> None:
    used: set[str] = set()
    for coding in _codings([*_translated(), *_site_directory(), *RESOURCES]):
        if not coding["system"].startswith(f"{codes.BASE}/CodeSystem/"):
            continue
        concepts = {c["code"]: c["display"] for c in CODE_SYSTEMS[coding["system"]]["concept"]}
        assert coding["code"] in concepts, coding
        if "display" in coding:
            assert coding["display"] == concepts[coding["code"]], coding
        used.add(coding["system"])
    assert used == set(CODE_SYSTEMS)  # every project code system is in use


# --- meta.profile ------------------------------------------------------------------------------------------


def _expected_profile(resource: Json) -> str:
    kind = resource["resourceType"]
    if kind == "QuestionnaireResponse":
        startback = resource["questionnaire"].startswith(codes.Q_STARTBACK)
        return codes.PROFILE_STARTBACK_RESPONSE if startback else codes.PROFILE_ELIGIBILITY_RESPONSE
    if kind == "Observation":
        scored = resource["code"]["coding"][0]["system"] == codes.LOINC
        return codes.PROFILE_STARTBACK_SCORE if scored else codes.PROFILE_ELIGIBILITY_ASSESSMENT
    if kind == "Bundle" and resource["type"] == "message":
        return codes.PROFILE_MESSAGE
    own = {"ServiceRequest": codes.PROFILE_REFERRAL, "MessageHeader": codes.PROFILE_MESSAGE_HEADER}
    return own.get(kind, codes.PROFILE[kind])


def test_meta_profile_per_resource_kind() -> None:
    for bundle in _translated():
        for resource in [bundle, *(e["resource"] for e in bundle["entry"])]:
            assert resource["meta"]["profile"] == [_expected_profile(resource)]


# --- invariants: true on every example, false on a copy broken in the one way each names ------------------------


def _invariants(sd: Json) -> Iterator[tuple[str, Json]]:
    """(path, constraint) of every invariant of a profile."""
    for el in sd["differential"]["element"]:
        for constraint in el.get("constraint", []):
            yield el["path"], constraint


def _holds(resource: Json, path: str, constraint: Json) -> bool:
    # An invariant on a repeating child holds when it holds on every repetition (FHIR R4 conformance-rules).
    inner = path.split(".", 1)[1] if "." in path else None
    expression = f"{inner}.all({constraint['expression']})" if inner else constraint["expression"]
    result = evaluate(resource, expression, {"resource": resource}, models["r4"])
    assert result in ([True], [False]), f"{constraint['key']} gave {result}"
    return bool(result[0])


def _example_resources() -> Iterator[tuple[str, Json]]:
    for bundle in _translated():
        for resource in [bundle, *(e["resource"] for e in bundle["entry"])]:
            yield resource["meta"]["profile"][0], resource
    yield codes.PROFILE_ACKNOWLEDGEMENT, _acknowledgement()


@cache
def _acknowledged() -> str:
    """The server's 200 answer to the back-physio-medium message, as JSON text (posted once per run)."""
    import tempfile
    import warnings

    from escape_fhir.api import create_app
    from escape_fhir.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    body = (EXAMPLES / "bundles" / f"{MEDIUM}.message.json").read_bytes()
    headers = {"Content-Type": "application/fhir+json", "X-Request-ID": "ack-1", "X-Correlation-ID": "ack"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        TestClient(create_app(Settings(database_url=f"sqlite:///{tmp}/db.sqlite3"))) as client,
    ):
        answer = client.post("/$process-message", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    text: str = answer.text
    return text


def _acknowledgement() -> Json:
    data: Json = json.loads(_acknowledged())
    return data


def test_every_invariant_holds_on_every_translated_resource() -> None:
    checked = set()
    for profile_url, resource in _example_resources():
        sd = BY_URL.get(profile_url)
        for path, constraint in _invariants(sd) if sd else ():
            assert _holds(resource, path, constraint), f"{constraint['key']} fails on {resource['id']}"
            checked.add(constraint["key"])
    assert checked == {c["key"] for sd in PROFILES for _, c in _invariants(sd)}


def _example(profile: str, example: str) -> Json:
    """A fresh copy of an example of a profile: examples/resources where it has one, else from a Bundle."""
    if example == "acknowledgement":
        return _acknowledgement()
    path = EXAMPLES / "resources" / f"{profile}-{example}.json"
    if path.exists():
        data: Json = json.loads(path.read_text(encoding="utf-8"))
        return data
    bundle = json.loads((EXAMPLES / "bundles" / f"{example}.message.json").read_text(encoding="utf-8"))
    url = f"{codes.SD}/{profile}"
    found: Json = next(e["resource"] for e in bundle["entry"] if e["resource"]["meta"]["profile"] == [url])
    return found


def _set(path: str, value: Any) -> Callable[[Json], None]:
    """A breaker that sets one value at a dotted path with list indices (``entry.1.fullUrl``)."""

    def apply(resource: Json) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return apply


def _drop_last_updated(resource: Json) -> None:
    del resource["entry"][3]["resource"]["meta"]["lastUpdated"]


def _second_service_request(resource: Json) -> None:
    entry = copy.deepcopy(resource["entry"][1])
    entry["fullUrl"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
    resource["entry"].append(entry)


def _repeat_criterion(resource: Json) -> None:
    resource["component"].append(copy.deepcopy(resource["component"][0]))


MEDIUM = "back-physio-medium"
BREAKS = [
    pytest.param("EscapePainReferralMessage", MEDIUM, _drop_last_updated, "esc-bdl-1", id="no-lastUpdated"),
    pytest.param("EscapePainReferralMessage", MEDIUM, _set("entry.2.fullUrl", "Patient/1"), "esc-bdl-2", id="url"),
    pytest.param("EscapePainReferralMessage", MEDIUM, _second_service_request, "esc-bdl-3", id="two-requests"),
    pytest.param(
        "EscapePainReferralMessage",
        MEDIUM,
        _set("entry.0.resource.focus.0.reference", "urn:uuid:x"),
        "esc-bdl-4",
        id="focus-elsewhere",
    ),
    pytest.param(
        "EscapePainReferralAcknowledgement", "acknowledgement", _drop_last_updated, "esc-ack-1", id="ack-meta"
    ),
    pytest.param(
        "EscapePainReferralAcknowledgement",
        "acknowledgement",
        _set("entry.0.resource.focus.0.reference", "Patient/1"),
        "esc-ack-2",
        id="ack-focus-elsewhere",
    ),
    pytest.param(
        "EscapePainReferralAcknowledgement",
        "acknowledgement",
        lambda r: r.update(entry=[e for e in r["entry"] if e["resource"]["resourceType"] != "Encounter"]),
        "esc-ack-3",
        id="ack-no-planned-encounter",
    ),
    pytest.param(
        "EscapePainEligibilityResponse",
        "back-eligibility",
        _set("questionnaire", f"{codes.Q_STARTBACK}|1.0.0"),
        "esc-qr-1",
        id="eligibility-names-startback",
    ),
    pytest.param(
        "EscapePainEligibilityResponse",
        "knee-hip-eligibility",
        _set("questionnaire", f"{codes.Q_BACK}-x"),
        "esc-qr-1",
        id="eligibility-near-miss-url",
    ),
    pytest.param(
        "StartBackResponse",
        "startback",
        _set("questionnaire", "http://example.org/Questionnaire/startback"),
        "esc-qr-2",
        id="foreign-questionnaire",
    ),
    pytest.param("StartBackScore", "91351-7", _set("valueInteger", 10), "esc-sb-1", id="total-over-9"),
    pytest.param("StartBackScore", "91350-9", _set("valueInteger", 6), "esc-sb-2", id="subscore-over-5"),
    pytest.param("StartBackScore", "91352-5", lambda r: r.pop("valueCodeableConcept"), "esc-sb-3", id="risk-uncoded"),
    pytest.param(
        "EscapePainEligibilityAssessment",
        "knee-not-eligible",
        _set("valueCodeableConcept.coding.0.code", "needs-review"),
        "esc-elig-1 esc-elig-3",
        id="unmet-but-not-refused",
    ),
    pytest.param(
        "EscapePainEligibilityAssessment",
        MEDIUM,
        _set("component.0.valueCodeableConcept.coding.0.code", "not-met"),
        "esc-elig-1 esc-elig-2",
        id="unmet-but-eligible",
    ),
    pytest.param(
        "EscapePainEligibilityAssessment",
        "back-self-low",
        _set("valueCodeableConcept.coding.0.code", "eligible"),
        "esc-elig-2",
        id="eligible-with-unknown",
    ),
    pytest.param(
        "EscapePainEligibilityAssessment",
        MEDIUM,
        _set("valueCodeableConcept.coding.0.code", "needs-review"),
        "esc-elig-3",
        id="review-with-all-met",
    ),
    pytest.param("EscapePainEligibilityAssessment", MEDIUM, _repeat_criterion, "esc-elig-4", id="criterion-twice"),
    pytest.param(
        "EscapePainEligibilityAssessment",
        MEDIUM,
        lambda r: r["component"][2]["valueCodeableConcept"].pop("text"),
        "esc-elig-5",
        id="no-reason",
    ),
]


@pytest.mark.parametrize(("profile", "example", "breaker", "keys"), BREAKS)
def test_invariant_catches_what_it_names(profile: str, example: str, breaker: Callable[[Json], Any], keys: str) -> None:
    """Break one thing in a copy of a valid example: exactly the invariants that name it fail."""
    resource = _example(profile, example)
    breaker(resource)
    sd = BY_URL[f"{codes.SD}/{profile}"]
    failed = {c["key"] for path, c in _invariants(sd) if not _holds(resource, path, c)}
    assert failed == set(keys.split())


# --- the profiles/ folder is a FHIR package ------------------------------------------------------------------


def _folder_json(name: str) -> Json:
    data: Json = json.loads((FOLDER / name).read_text(encoding="utf-8"))
    return data


def test_package_manifest() -> None:
    manifest = _folder_json("package.json")
    assert manifest == package_manifest()
    assert manifest["name"] == PACKAGE_NAME
    # packages.html: two or more dot-separated namespaces, each a lowercase letter then [a-z0-9-]*.
    assert re.fullmatch(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+", manifest["name"])
    assert manifest["version"] == __version__ and re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["fhirVersions"] == ["4.0.1"] and manifest["canonical"] == codes.BASE
    assert manifest["dependencies"]["hl7.fhir.r4.core"] == "4.0.1"


def test_package_depends_on_the_ukcore_package() -> None:
    """UK Core under its registry id; the reference copy's own name is an alias the validator knows."""
    ukcore = json.loads(shared("fhir", "ukcore", "package.json").read_text(encoding="utf-8"))
    registry_id = PACKAGE_ALIASES[ukcore["name"]]
    assert package_manifest()["dependencies"][registry_id] == ukcore["version"]


def test_package_depends_on_what_its_extensions_come_from() -> None:
    """Every extension URL the package's content uses is defined by the package, R4 core, or a declared
    dependency (SDC for the Questionnaire's calculatedExpression and observationExtract, the extensions pack
    for itemWeight): a tool that loads the package by its dependencies knows each of them."""
    dependencies = package_manifest()["dependencies"]
    owners = {
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/": "hl7.fhir.uv.sdc",
        "http://hl7.org/fhir/StructureDefinition/itemWeight": "hl7.fhir.uv.extensions.r4",
    }
    used = {url for r in RESOURCES for url in _extension_urls(r)}
    assert any(u.startswith("http://hl7.org/fhir/uv/sdc/") for u in used)
    for url in sorted(used):
        owner = next((name for prefix, name in owners.items() if url.startswith(prefix)), None)
        if owner is not None:
            assert owner in dependencies, url
        else:
            core = model().extension(url) is not None
            assert core or url in BY_URL or url.startswith(codes.BASE), f"{url}: no package declared defines it"


def _extension_urls(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("extension", "modifierExtension") and isinstance(value, list):
                yield from (str(e.get("url")) for e in value if isinstance(e, dict))
            yield from _extension_urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _extension_urls(item)


def test_package_folder_holds_exactly_the_resources_and_their_index() -> None:
    files = {p.name for p in FOLDER.iterdir()}
    assert files == {file_name(r) for r in RESOURCES} | {"package.json", ".index.json"}
    index = _folder_json(".index.json")
    assert index["index-version"] == 1
    assert sorted(f["filename"] for f in index["files"]) == sorted(file_name(r) for r in RESOURCES)
    for entry in index["files"]:
        resource = _folder_json(entry["filename"])
        assert resource == BY_URL[entry["url"]]
        for key in ("resourceType", "id", "url", "version", "kind", "type"):
            assert entry.get(key) == resource.get(key), (entry["filename"], key)


# --- examples/resources -----------------------------------------------------------------------------------


EXAMPLE_FILES = sorted((EXAMPLES / "resources").glob("*.json"))


def test_every_profile_has_an_example() -> None:
    profiled = {json.loads(p.read_text(encoding="utf-8"))["meta"]["profile"][0] for p in EXAMPLE_FILES}
    # The acknowledgement is only the server's to make (its ids, its clock): its example is the server's own
    # answer, checked here (_acknowledgement) and in tests/api/test_conformance_end_to_end.py.
    profiled.add(str(_acknowledgement()["meta"]["profile"][0]))
    assert profiled == {sd["url"] for sd in PROFILES if sd["type"] != "Extension"}
    referral = _example("EscapePainReferral", "back-physio-medium")
    assert referral["extension"][0]["url"] == codes.EXT_REFERRAL_SOURCE  # the extension's example


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_example_is_valid_r4_and_keeps_its_invariants(path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert path.stem.startswith(resource["meta"]["profile"][0].rsplit("/", 1)[1] + "-")
    for element_path, constraint in _invariants(BY_URL[resource["meta"]["profile"][0]]):
        assert _holds(resource, element_path, constraint), constraint["key"]
