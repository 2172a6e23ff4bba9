"""The reader against the sender corpus (issue 8): every Bundle shaped as an NHS system sends it is read with
the facts it states, each recorded where it was found; each shape's criteria come out as expected; nothing
present but not understood is dropped silently; what is not an ESCAPE-pain referral is refused."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from escape_fhir.domain.eligibility import calendar_months
from escape_fhir.errors import MappingError
from escape_fhir.fhir.readers import ReadResult, assess_read, read_referral
from tests.fhir.sender_corpus import Case, cases, refused

CASES = [pytest.param(c, id=c.name) for c in cases()]


def _value(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _read(case: Case) -> ReadResult:
    return read_referral(case.bundle())


@pytest.mark.parametrize("case", CASES)
def test_sender_bundle_facts(case: Case) -> None:
    result = _read(case)
    data = result.referral.to_json_dict()
    for path, expected in case.expect.get("facts", {}).items():
        got = _value(data, path)
        if path == "affectedSites":
            got = sorted(got or [])
            expected = sorted(expected)
        elif path == "symptomDurationMonths" and got is None and data.get("symptomOnsetDate"):
            # Read as the onset date, from which the rules count calendar months to the referral date.
            onset, referred = (date.fromisoformat(data[k]) for k in ("symptomOnsetDate", "referralDate"))
            got = calendar_months(onset, referred)[0]
        elif path == "startBackResult" and got is None and result.referral.effective_start_back() is not None:
            # Read as the nine answers: their score is the result.
            got = result.referral.effective_start_back().model_dump(mode="json", exclude_none=True)  # type: ignore[union-attr]
        elif path == "diagnoses":
            got = sorted(d["code"] for d in got or [])
            expected = sorted(expected)
        assert got == expected, f"{path}: read {got!r}, expected {expected!r}"


@pytest.mark.parametrize("case", CASES)
def test_sender_bundle_facts_are_recorded_where_they_were_found(case: Case) -> None:
    result = _read(case)
    recorded: dict[str, list[str]] = {}
    for p in result.provenance:
        recorded.setdefault(p.field.split("[")[0], []).append(p.location)
    for path, prefix in case.expect.get("where", {}).items():
        # A fact is where it, or the part it belongs to, was recorded (referrer.organisation.odsCode: also
        # where the organisation was referenced from); a STarT Back result read as answers is "startBack".
        wanted = "startBack" if path == "startBackResult" else path.split("[")[0]
        locations = [
            loc for field, locs in recorded.items() if wanted == field or wanted.startswith(field + ".") for loc in locs
        ]
        assert any(loc.startswith(prefix) for loc in locations), f"{path}: recorded at {locations}, not {prefix}"


@pytest.mark.parametrize("case", CASES)
def test_sender_bundle_criteria(case: Case) -> None:
    result = _read(case)
    criteria = {c.code: c for c in assess_read(result).criteria}
    for code, outcome in case.expect.get("criteria", {}).items():
        assert criteria[code].outcome.value == outcome, (
            f"{code}: {criteria[code].outcome.value} ({criteria[code].reason})"
        )


@pytest.mark.parametrize("case", CASES)
def test_nothing_dropped_silently(case: Case) -> None:
    """Each element the expectation names as not understood is reported as a warning at or inside it."""
    result = _read(case)
    for prefix in case.expect.get("warnings", []):
        assert any(w.location.startswith(prefix) or prefix.startswith(w.location) for w in result.warnings), (
            f"nothing reported for {prefix}: {[(w.location, w.message) for w in result.warnings]}"
        )


@pytest.mark.parametrize("case", CASES)
def test_every_flag_and_unknown_criterion_says_why(case: Case) -> None:
    result = _read(case)
    for c in assess_read(result).criteria:
        assert c.reason.strip(), c
    for flag in result.flags:
        assert "Bundle" in flag.reason or "looked" in flag.reason or "not" in flag.reason, flag


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in refused()])
def test_not_an_escape_pain_referral_is_refused(case: Case) -> None:
    with pytest.raises(MappingError) as info:
        _read(case)
    assert info.value.issues and all(i.location for i in info.value.issues)
