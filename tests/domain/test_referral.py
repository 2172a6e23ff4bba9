"""The referral input format: what loads, what is refused, and that every bad field is named.

Cases live in ``cases/referral.json``: each changes one thing (or, for the "at once" cases, several) in a
valid base referral and lists every ``[location, message fragment]`` expected in
``ReferralInputError.errors``, in order.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from escape_fhir.domain import Referral, load_referral, referral_json_schema
from escape_fhir.errors import FieldError, InputError, ReferralInputError

from . import changed, load_table

TABLE = load_table("referral.json")
BASES: dict[str, dict[str, Any]] = TABLE["bases"]


def _params(rows: list[dict[str, Any]]) -> list[Any]:
    return [
        pytest.param(
            row,
            id=row["id"],
            marks=[pytest.mark.xfail(reason=row["xfail"], strict=True)] if "xfail" in row else [],
        )
        for row in rows
    ]


def _at(doc: Any, path: str) -> Any:
    for key in path.split("."):
        doc = doc[key]
    return doc


def _errors(data: Any) -> list[FieldError]:
    with pytest.raises(ReferralInputError) as caught:
        load_referral(data)
    return caught.value.errors


@pytest.mark.parametrize("name", sorted(BASES))
def test_base_loads_from_object_text_and_bytes(name: str) -> None:
    base = BASES[name]
    referral = load_referral(base)
    assert isinstance(referral, Referral)
    text = json.dumps(base)
    assert load_referral(text) == referral
    assert load_referral(text.encode()) == referral


@pytest.mark.parametrize("name", sorted(BASES))
def test_round_trip_is_stable(name: str) -> None:
    referral = load_referral(BASES[name])
    again = load_referral(referral.to_json_dict())
    assert again == referral
    assert again.to_json_dict() == referral.to_json_dict()


def test_full_referral_keeps_every_field() -> None:
    full = BASES["back-full"]
    normalised = {"patient.nhsNumber": "9990000026", "patient.address.postcode": "LS1 4AP"}
    normalised["referrer.organisation.odsCode"] = "RY6"
    assert load_referral(full).to_json_dict() == changed(full, {"set": normalised})


@pytest.mark.parametrize("case", _params(TABLE["valid"]))
def test_valid(case: dict[str, Any]) -> None:
    loaded = load_referral(changed(BASES[case["base"]], case)).to_json_dict()
    assert {path: _at(loaded, path) for path in case["expect"]} == case["expect"]


@pytest.mark.parametrize("case", _params(TABLE["invalid"]))
def test_invalid(case: dict[str, Any]) -> None:
    errors = _errors(changed(BASES[case["base"]], case))
    assert [e.location for e in errors] == [location for location, _ in case["errors"]]
    for error, (_, fragment) in zip(errors, case["errors"], strict=True):
        assert fragment in error.message


def test_every_error_is_in_the_exception_text() -> None:
    case = next(c for c in TABLE["invalid"] if c["id"] == "several field errors reported at once")
    with pytest.raises(ReferralInputError) as caught:
        load_referral(changed(BASES[case["base"]], case))
    text = str(caught.value)
    assert text.startswith("invalid referral: ")
    assert all(str(e) in text for e in caught.value.errors)
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param("not json", "not valid JSON", id="text that is not JSON"),
        pytest.param(b"{", "not valid JSON", id="truncated JSON bytes"),
        pytest.param("", "not valid JSON", id="empty text"),
        pytest.param("[]", "a referral must be a JSON object", id="a JSON array"),
        pytest.param('[{"pathway": "back"}]', "a referral must be a JSON object", id="a JSON array of a referral"),
        pytest.param('"referral"', "a referral must be a JSON object", id="a JSON string"),
        pytest.param("null", "a referral must be a JSON object", id="JSON null"),
    ],
)
def test_not_a_json_object(data: str | bytes, fragment: str) -> None:
    errors = _errors(data)
    assert len(errors) == 1
    assert errors[0].location == ""
    assert fragment in errors[0].message


def test_empty_object_names_every_required_field() -> None:
    locations = {e.location for e in _errors({})}
    assert locations == {"referralDate", "pathway", "source", "patient"}


# --- the JSON Schema ------------------------------------------------------------------------------------


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is needed to check the referral schema")
    schema = referral_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_header() -> None:
    schema = referral_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "ESCAPE-pain referral"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"referralDate", "pathway", "source", "patient"}


def test_schema_is_serialisable_json() -> None:
    schema = referral_json_schema()
    assert json.loads(json.dumps(schema)) == schema


@pytest.mark.parametrize("name", sorted(BASES))
def test_schema_accepts_the_bases_and_their_round_trip(name: str) -> None:
    validator = _validator()
    assert list(validator.iter_errors(BASES[name])) == []
    assert list(validator.iter_errors(load_referral(BASES[name]).to_json_dict())) == []


@pytest.mark.parametrize("case", _params(TABLE["valid"]))
def test_schema_accepts_valid_cases(case: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(changed(BASES[case["base"]], case))) == []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"set": {"colour": "red"}}, id="unknown field"),
        pytest.param({"set": {"patient.sex": "F"}}, id="unknown sex"),
        pytest.param({"set": {"pathway": "shoulder"}}, id="unknown pathway"),
        pytest.param({"set": {"affectedSites": ["shoulder"]}}, id="unknown affected site"),
        pytest.param({"unset": ["patient"]}, id="no patient"),
        pytest.param({"set": {"startBackResult": {"risk": "medium", "total": 10}}}, id="total over 9"),
    ],
)
def test_schema_refuses_structural_errors(change: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(changed(BASES["back-full"], change))) != []


# --- dates judged against today ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "refused"),
    [
        pytest.param("referralDate", "2025-03-10", False, id="referral dated today"),
        pytest.param("referralDate", "2025-03-11", False, id="referral dated tomorrow: one day of clock skew"),
        pytest.param("referralDate", "2025-03-12", True, id="referral dated two days ahead"),
        pytest.param("patient.birthDate", "2025-03-12", True, id="born two days ahead (after the referral date too)"),
        pytest.param("symptomOnsetDate", "2025-03-12", True, id="onset two days ahead"),
    ],
)
def test_future_dates_allow_one_day_of_clock_skew(path: str, value: str, refused: bool) -> None:
    today = date(2025, 3, 10)
    data = changed(BASES["knee-hip-minimal"], {"set": {"referralDate": "2025-03-10", path: value}})
    if not refused:
        assert load_referral(data, today=today).to_json_dict()[path] == value
        return
    with pytest.raises(ReferralInputError) as caught:
        load_referral(data, today=today)
    assert (path, f"{value} is in the future (today is 2025-03-10)") in [
        (e.location, e.message) for e in caught.value.errors
    ]


def test_answers_json_is_the_models_json_dump() -> None:
    """referral.answers_json writes the eligibility answers without pydantic's serializer: the same dict, in
    the same order, for every combination of answered (true/false) and unanswered questions."""
    import random

    from escape_fhir.domain import EligibilityAnswers
    from escape_fhir.domain.referral import answers_json

    names = list(EligibilityAnswers.model_fields)
    rng = random.Random(8)
    for _ in range(500):
        answers = EligibilityAnswers(**{name: rng.choice([None, True, False]) for name in names})
        dumped = answers.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert list(answers_json(answers).items()) == list(dumped.items())
