"""No 5xx from small hostile requests, and every limit at its number and just past it (issue 10, items 2-3).

Each case is a request a careless or hostile client can send in a few bytes; each must get a 4xx
OperationOutcome that names the problem (README "Server", "Limits").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from escape_fhir.fhir import bounds
from escape_fhir.service import limits, outcomes
from escape_fhir.service.limits import ascii_int
from tests.api.conftest import MakeClient, example, message_headers

Json = dict[str, Any]


def outcome_of(r: Any, status: int) -> Json:
    assert r.status_code == status, r.text[:500]
    body: Json = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return body


def diagnostics(body: Json) -> str:
    return " | ".join(i.get("diagnostics", "") for i in body["issue"])


def knee() -> Json:
    bundle: Json = json.loads(example("knee-gp"))
    return bundle


def post_message(client: TestClient, bundle: Json | bytes) -> Any:
    body = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode()
    return client.post("/$process-message", content=body, headers=message_headers())


def nested_extensions(levels: int) -> Json:
    """A Patient whose extension holds an extension ... ``levels`` deep (valid FHIR at any depth)."""
    ext: Json = {"url": "http://example.org/fhir/StructureDefinition/e", "valueString": "v"}
    for _ in range(levels - 1):
        ext = {"url": "http://example.org/fhir/StructureDefinition/e", "extension": [ext]}
    return {"resourceType": "Patient", "extension": [ext]}


# ---- depth ------------------------------------------------------------------------------------------------
def test_json_nested_a_thousand_deep_is_a_400(client: TestClient) -> None:
    body = b'{"resourceType":"Bundle","type":"message","entry":' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert "nested deeper than 400" in diagnostics(outcome_of(post_message(client, body), 400))


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("levels", [300, bounds.MAX_DEPTH - 1])
def test_extensions_nested_deep_validate(client: TestClient, fmt: str, levels: int) -> None:
    """Patient + ``levels`` extensions = ``levels + 1`` elements deep: at the limit when levels = 399."""
    body = json.dumps(nested_extensions(levels)).encode()
    if fmt == "xml":
        from escape_fhir.fhir.formats import dump, parse

        body = dump(parse(body), "xml")
    r = client.post("/$validate", content=body, headers={"Content-Type": f"application/fhir+{fmt}"})
    body_out = outcome_of(r, 200)
    assert not [i for i in body_out["issue"] if i["severity"] == "error"], diagnostics(body_out)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_one_element_past_the_depth_limit_is_a_400(client: TestClient, fmt: str) -> None:
    resource = nested_extensions(bounds.MAX_DEPTH)  # Patient + 400 = 401 elements
    if fmt == "json":
        body = json.dumps(resource).encode()
    else:  # written by hand: the project's own writer reads nothing this deep
        inner = '<valueString value="v"/>'
        for _ in range(bounds.MAX_DEPTH):
            inner = f'<extension url="http://example.org/fhir/StructureDefinition/e">{inner}</extension>'
        body = f'<Patient xmlns="http://hl7.org/fhir">{inner}</Patient>'.encode()
    r = client.post("/$validate", content=body, headers={"Content-Type": f"application/fhir+{fmt}"})
    assert "nested deeper than 400" in diagnostics(outcome_of(r, 400))


def test_a_deep_message_is_stored_and_read_back(client: TestClient) -> None:
    """Deeper than orjson writes (255 levels): stored by the fallback writer, read back the same."""
    bundle = knee()
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["extension"] = nested_extensions(300)["extension"]
    r = post_message(client, bundle)
    assert r.status_code == 200, r.text[:500]
    stored = next(e["resource"] for e in r.json()["entry"] if e["resource"]["resourceType"] == "Patient")
    assert client.get(f"/Patient/{stored['id']}").json()["extension"] == patient["extension"]


# ---- types read before validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("eventCoding", 5),
        ("eventCoding", []),
        ("reason", 5),
        ("reason", {"coding": 5}),
        ("focus", "x"),
        ("focus", [5]),
        ("meta", 5),
        ("response", "x"),
    ],
)
def test_message_header_elements_of_the_wrong_json_type_are_a_400(client: TestClient, element: str, value: Any) -> None:
    bundle = knee()
    bundle["entry"][0]["resource"][element] = value
    body = outcome_of(post_message(client, bundle), 400)
    assert body["issue"][0]["expression"][0].startswith(f"Bundle.entry[0].resource.{element}")


@pytest.mark.parametrize("entry", [5, "x", {"a": 1}, [5], [{"request": 5}], [{"request": {"ifMatch": 'W/"²"'}}]])
def test_transaction_entries_of_the_wrong_type_are_a_400(client: TestClient, entry: Any) -> None:
    body = {"resourceType": "Bundle", "type": "transaction", "entry": entry}
    r = client.post("/", content=json.dumps(body), headers={"Content-Type": "application/fhir+json"})
    assert outcome_of(r, 400)["issue"][0]["expression"][0].startswith("Bundle.entry")


# ---- characters a store cannot hold ---------------------------------------------------------------------
NUL_CASES = ["identifier-system", "identifier-value", "key", "lone-surrogate"]


def poisoned(case: str) -> bytes:
    bundle = knee()
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    if case == "identifier-system":
        patient["identifier"][0]["system"] += "\x00"
    elif case == "identifier-value":
        patient["identifier"][0]["value"] = "\x00" + patient["identifier"][0]["value"]
    elif case == "key":
        patient["gender\x00"] = "female"
    else:
        return json.dumps(bundle).replace('"family": "', '"family": "\\ud800', 1).encode()
    return json.dumps(bundle).encode()


@pytest.mark.parametrize("case", NUL_CASES)
def test_nul_and_lone_surrogates_are_refused_on_sqlite(client: TestClient, case: str) -> None:
    refused(post_message(client, poisoned(case)))


def refused(r: Any) -> None:
    issue = outcome_of(r, 400)["issue"][0]
    assert issue["expression"][0].startswith("Bundle.entry[2].resource.")  # the Patient
    assert "NUL" in issue["diagnostics"] or "surrogate" in issue["diagnostics"]


@pytest.mark.postgres
@pytest.mark.parametrize("case", NUL_CASES)
def test_nul_and_lone_surrogates_are_refused_on_postgresql(make_client: MakeClient, pg_url: str, case: str) -> None:
    client = make_client(database_url=pg_url)
    refused(post_message(client, poisoned(case)))
    assert outcome_of(client.get("/Patient/a%00b"), 404)
    assert outcome_of(client.get("/ServiceRequest", params={"identifier": "a\x00b"}), 400)


# ---- numbers ------------------------------------------------------------------------------------------------
def startback_with_value(text: str) -> bytes:
    """The STarT Back total Observation of a back referral with ``valueQuantity.value`` written as ``text``."""
    bundle: Json = json.loads(example("back-physio-medium"))
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Observation" and "valueInteger" in res:
            res["meta"].pop("profile", None)  # base Observation allows a Quantity: the reader meets the number
            del res["valueInteger"]
            res["valueQuantity"] = {"value": "NUMBER"}
            break
    return json.dumps(bundle).replace('"NUMBER"', text).encode()


@pytest.mark.parametrize("text", ["1e999999", "-1e309", "1e-309", "1" * 65 + ".5"])
def test_numbers_beyond_the_bounds_are_refused_at_once(client: TestClient, text: str) -> None:
    import time

    started = time.monotonic()
    assert "number" in diagnostics(outcome_of(post_message(client, startback_with_value(text)), 400))
    assert time.monotonic() - started < 5  # was ~24 s (int() of a million-digit Decimal)


@pytest.mark.parametrize("text", ["1e308", "4", "4.0e0"])
def test_numbers_within_the_bounds_are_read(client: TestClient, text: str) -> None:
    r = post_message(client, startback_with_value(text))
    assert r.status_code in (200, 422), r.text[:300]  # read; 1e308 is no STarT Back score (422), never 400/500


def test_huge_integers_in_xml_are_a_400(client: TestClient) -> None:
    body = f'<Patient xmlns="http://hl7.org/fhir"><multipleBirthInteger value="{"9" * 5000}"/></Patient>'
    r = client.post("/$validate", content=body, headers={"Content-Type": "application/fhir+xml"})
    outcome_of(r, 400)


# ---- URLs and headers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "_lastUpdated=9999",
        "_lastUpdated=le9999-12-31",
        "_lastUpdated=eq9999-12-31T23:59:59Z",
        "_lastUpdated=gt9999-12",
        "_lastUpdated=lt0001-01-01T00:00:00%2B14:00",
    ],
)
def test_last_updated_at_the_end_of_the_calendar(client: TestClient, query: str) -> None:
    r = client.get(f"/ServiceRequest?{query}")
    assert r.status_code in (200, 400), r.text
    assert r.json()["resourceType"] in ("Bundle", "OperationOutcome")


@pytest.mark.parametrize("query", ["_lastUpdated=10000", "_lastUpdated=99999-01-01", "_lastUpdated=٢٠٢٦"])
def test_dates_past_year_9999_are_a_400(client: TestClient, query: str) -> None:
    outcome_of(client.get(f"/ServiceRequest?{query}"), 400)


@pytest.mark.parametrize("name", ["_count", "_offset"])
@pytest.mark.parametrize("value", ["²", "٣", "1e3", "-1", " 1", "9" * 19])
def test_search_numbers_are_ascii_digits(client: TestClient, name: str, value: str) -> None:
    outcome_of(client.get("/ServiceRequest", params={name: value}), 400)


def test_search_numbers_at_their_bound(client: TestClient) -> None:
    assert client.get("/ServiceRequest", params={"_offset": "9" * 18}).status_code == 200


@pytest.mark.parametrize("version", ["²", "٣", "9" * 19, "9" * 40])
def test_version_ids_are_ascii_digits(client: TestClient, version: str) -> None:
    outcome_of(client.get(f"/Task/x/_history/{version}"), 404)


@pytest.mark.parametrize("value", ['W/"²"'.encode(), b'W/"' + b"9" * 40 + b'"', b'W/"1\xff"'])
def test_if_match_is_ascii_digits(client: TestClient, value: bytes) -> None:
    headers = [(b"content-type", b"application/fhir+json"), (b"if-match", value)]
    task = {"resourceType": "Task", "id": "x", "status": "accepted", "intent": "order"}
    r = client.put("/Task/x", content=json.dumps(task), headers=headers)  # type: ignore[arg-type]
    outcome_of(r, 412)


def test_strict_numbers() -> None:
    assert ascii_int("0") == 0 and ascii_int("9" * 18) == 10**18 - 1
    for text in ("", "²", "٣", "9" * 19, "+1", "1_000", " 1"):
        assert ascii_int(text) is None


# ---- limits: at the number and just past it ----------------------------------------------------------------
def or_values(n: int) -> str:
    return ",".join(f"urn:example|{i}" for i in range(n))


def test_ored_search_values_at_the_limit_and_past_it(client: TestClient) -> None:
    r = client.get("/ServiceRequest", params={"identifier": or_values(limits.MAX_SEARCH_VALUES)})
    assert r.status_code == 200
    r = client.get("/ServiceRequest", params={"identifier": or_values(limits.MAX_SEARCH_VALUES + 1)})
    assert "at most 100" in diagnostics(outcome_of(r, 400))
    r = client.get("/ServiceRequest", params={"identifier": or_values(1500)})  # was a 500 from SQLite
    outcome_of(r, 400)
    split = [("identifier", or_values(60)), ("patient.identifier", or_values(41))]  # all parameters together
    outcome_of(client.get("/ServiceRequest", params=split), 400)


@pytest.mark.parametrize(("count", "status"), [(limits.MAX_SEARCH_VALUES, (200, 400, 422)), (1500, (400,))])
def test_ored_values_of_a_conditional_create(client: TestClient, count: int, status: tuple[int, ...]) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:example", "value": "1"}]}
    entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": patient,
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={or_values(count)}"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    r = client.post("/", content=json.dumps(bundle), headers={"Content-Type": "application/fhir+json"})
    assert r.status_code in status, r.text[:300]


def bundle_with_entries(n: int, kind: str) -> Json:
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}"} for _ in range(n)]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


@pytest.mark.parametrize(
    "path,kind", [("/$process-message", "message"), ("/", "transaction"), ("/$validate", "collection")]
)
def test_bundle_entries_at_the_limit_and_past_it(client: TestClient, path: str, kind: str) -> None:
    headers = message_headers()
    at = client.post(path, content=json.dumps(bundle_with_entries(limits.MAX_ENTRIES, kind)), headers=headers)
    assert at.status_code in (200, 400, 422) and at.json()["resourceType"] in ("OperationOutcome", "Bundle")
    assert "too many Bundle entries" not in at.text
    past = client.post(path, content=json.dumps(bundle_with_entries(limits.MAX_ENTRIES + 1, kind)), headers=headers)
    assert "at most 1000" in diagnostics(outcome_of(past, 413))


def test_a_million_empty_entries_are_refused_before_parsing(client: TestClient) -> None:
    import time

    body = b'{"resourceType":"Bundle","type":"message","entry":[' + b",".join([b"{}"] * 1_500_000) + b"]}"
    started = time.monotonic()
    body_out = outcome_of(post_message(client, body), 413)
    assert time.monotonic() - started < 5 and len(json.dumps(body_out)) < 2000


def test_containers_at_the_limit_and_past_it() -> None:
    from escape_fhir.errors import FhirFormatError
    from escape_fhir.fhir import jsonio

    def doc(n: int) -> str:  # n containers: the root object, one array, n - 2 empty objects
        return '{"resourceType":"Basic","a":[' + ",".join(["{}"] * (n - 2)) + "]}"

    assert len(jsonio.loads(doc(bounds.MAX_CONTAINERS))["a"]) == bounds.MAX_CONTAINERS - 2
    with pytest.raises(bounds.TooLarge):
        jsonio.loads(doc(bounds.MAX_CONTAINERS + 1))
    with pytest.raises(FhirFormatError):
        from escape_fhir.fhir.xmlio import xml_to_json

        xml_to_json(b'<Basic xmlns="http://hl7.org/fhir">' + b"<a/>" * (2 * bounds.MAX_CONTAINERS + 2) + b"</Basic>")


def test_issues_per_answer_at_the_limit_and_past_it() -> None:
    from escape_fhir.errors import Issue

    def issues(n: int) -> list[Issue]:
        return [Issue("warning", "invalid", f"w{i}", f"X.y[{i}]") for i in range(n - 1)] + [
            Issue("error", "invalid", "the error", "X.z")
        ]

    at = outcomes.outcome(outcomes.Problem.BAD_REQUEST, issues(outcomes.MAX_ISSUES))["issue"]
    assert len(at) == outcomes.MAX_ISSUES and at[-1]["diagnostics"] == "the error"
    past = outcomes.outcome(outcomes.Problem.BAD_REQUEST, issues(outcomes.MAX_ISSUES + 7))["issue"]
    assert len(past) == outcomes.MAX_ISSUES
    assert past[0]["diagnostics"] == "the error"  # errors come first
    assert past[-1]["diagnostics"].startswith("8 more issues were left out")


def test_an_answer_of_many_validation_errors_is_capped(client: TestClient) -> None:
    body = {"resourceType": "Patient", "name": [{"given": [5]} for _ in range(limits.MAX_ENTRIES)]}
    r = client.post("/$validate", content=json.dumps(body), headers={"Content-Type": "application/fhir+json"})
    answer = outcome_of(r, 200)
    assert len(answer["issue"]) == outcomes.MAX_ISSUES and "left out" in answer["issue"][-1]["diagnostics"]


# ---- duplicate keys ----------------------------------------------------------------------------------------
def test_a_second_nhs_number_value_in_one_identifier_is_refused(client: TestClient) -> None:
    text = example("knee-gp").decode()
    at = text.index('"value": "', text.index("https://fhir.nhs.uk/Id/nhs-number"))
    forged = text[:at] + '"value": "9434765919", ' + text[at:]
    body = outcome_of(post_message(client, forged.encode()), 400)
    assert "duplicate JSON key 'value'" in diagnostics(body)
    assert body["issue"][0]["expression"][0].endswith(".identifier[0].value")
