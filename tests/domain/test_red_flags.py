"""Red flags and exclusions: the built-in table, the published ValueSet, and a site's own rows.

The per-code eligibility cases (each red flag on each pathway) are rows of ``cases/eligibility.json``;
here: that the table and ``profiles/ValueSet-red-flags.json`` say the same, that every code is a
well-formed SNOMED CT id, and how a site's rows are merged or refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.domain import RED_FLAGS, Decision, Outcome, Pathway, assess, load_referral
from escape_fhir.domain.red_flags import BOTH, SITE_SOURCE, is_sctid, with_site_flags
from escape_fhir.errors import RedFlagInputError
from escape_fhir.fhir.conformance import conformance_resources

from . import changed, load_table

ROOT = Path(__file__).resolve().parents[2]
BASES: dict[str, dict[str, Any]] = load_table("eligibility.json")["bases"]
DEFINITION = "http://hl7.org/fhir/StructureDefinition/valueset-concept-definition"
COMMENTS = "http://hl7.org/fhir/StructureDefinition/valueset-concept-comments"
PATHWAY_WORDS = {Pathway.KNEE_HIP: "ESCAPE-pain for knees and hips", Pathway.BACK: "ESCAPE-pain for backs"}


def _concepts(value_set: dict[str, Any]) -> dict[str, dict[str, str]]:
    (include,) = value_set["compose"]["include"]
    assert include["system"] == "http://snomed.info/sct"
    return {
        c["code"]: {"display": c["display"]} | {e["url"]: e["valueString"] for e in c["extension"]}
        for c in include["concept"]
    }


def _expected() -> dict[str, dict[str, str]]:
    return {
        code: {
            "display": flag.display,
            DEFINITION: flag.meaning,
            COMMENTS: f"Source: {flag.source}. Pathways: "
            + " and ".join(PATHWAY_WORDS[p] for p in Pathway if p in flag.pathways)
            + ".",
        }
        for code, flag in RED_FLAGS.items()
    }


def test_published_value_set_agrees_with_the_domain_table() -> None:
    published = json.loads((ROOT / "profiles/ValueSet-red-flags.json").read_text(encoding="utf-8"))
    assert published["url"] == "https://w3id.org/escape-fhir/ValueSet/red-flags"
    assert _concepts(published) == _expected()


def test_packaged_value_set_agrees_with_the_domain_table() -> None:
    (packaged,) = [r for r in conformance_resources() if r.get("url", "").endswith("/ValueSet/red-flags")]
    assert _concepts(packaged) == _expected()


def test_the_checks_above_can_fail() -> None:
    tampered = json.loads((ROOT / "profiles/ValueSet-red-flags.json").read_text(encoding="utf-8"))
    tampered["compose"]["include"][0]["concept"].pop()
    assert _concepts(tampered) != _expected()


@pytest.mark.parametrize("code", sorted(RED_FLAGS))
def test_every_built_in_code_is_a_well_formed_sctid_with_a_source(code: str) -> None:
    flag = RED_FLAGS[code]
    assert is_sctid(code)
    assert flag.code == code
    assert flag.pathways and flag.meaning.strip() and "NICE NG" in flag.source


def test_the_guidelines_named_in_issue_9_are_covered() -> None:
    # Issue 9: a back referral with cauda equina syndrome, malignancy, fracture or ankylosing spondylitis,
    # and a knee referral with malignancy or rheumatoid arthritis, came out eligible.
    back = {c for c, f in RED_FLAGS.items() if Pathway.BACK in f.pathways}
    knee_hip = {c for c, f in RED_FLAGS.items() if Pathway.KNEE_HIP in f.pathways}
    assert {"192970008", "363346000", "125605004", "9631008"} <= back
    assert {"363346000", "69896004"} <= knee_hip


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        pytest.param("239873007", True, id="OA of knee"),
        pytest.param("945641000000100", True, id="UK extension id (STarT Back medium, nhs-standards 4.3)"),
        pytest.param("45641000000100", False, id="same id with a digit dropped"),
        pytest.param("239873008", False, id="last digit wrong"),
        pytest.param("0239873007", False, id="leading zero"),
        pytest.param("12345", False, id="too short"),
        pytest.param("23987300x", False, id="not digits"),
    ],
)
def test_sctid_check_digit(code: str, valid: bool) -> None:
    assert is_sctid(code) is valid


# --- a site's rows ------------------------------------------------------------------------------------------


def test_site_rows_add_codes_for_their_pathway() -> None:
    flags = with_site_flags([{"code": "239873007", "display": "OA knee (test)", "pathway": "knee-hip"}])
    assert set(flags) == set(RED_FLAGS) | {"239873007"}
    assert flags["239873007"].pathways == frozenset({Pathway.KNEE_HIP})
    assert flags["239873007"].source == SITE_SOURCE
    referral = load_referral(changed(BASES["knee-hip"], {"set": {"diagnoses": [{"code": "239873007"}]}}))
    assert assess(referral).decision is Decision.ELIGIBLE  # the built-in table: no red flag
    result = assess(referral, red_flags=flags)
    criterion = {c.code: c for c in result.criteria}["red-flags"]
    assert result.decision is Decision.NOT_ELIGIBLE
    assert criterion.outcome is Outcome.NOT_MET
    assert criterion.reason == (
        "red flag or exclusion: 239873007 OA knee (test) (found at diagnoses[0]), "
        "added by this site (ESCAPE_FHIR_RED_FLAGS)"
    )


def test_a_site_row_for_a_built_in_code_widens_it_and_keeps_its_source() -> None:
    flags = with_site_flags([{"code": "192970008", "display": "CES", "pathway": "knee-hip"}])
    assert flags["192970008"].pathways == BOTH
    assert flags["192970008"].display == "Cauda equina syndrome"
    assert flags["192970008"].source == RED_FLAGS["192970008"].source


def test_no_rows_is_the_built_in_table() -> None:
    assert with_site_flags([]) == dict(RED_FLAGS)


def test_bad_site_rows_are_all_named() -> None:
    rows: list[object] = [
        {"code": "239873007", "display": "fine", "pathway": "both"},
        {"code": "239873008", "display": "typo", "pathway": "back"},
        {"code": "", "display": "", "pathway": "hips"},
        {"code": "239873007", "display": "x", "pathway": "back", "colour": "red"},
        "not an object",
    ]
    with pytest.raises(RedFlagInputError) as caught:
        with_site_flags(rows)
    assert [str(e) for e in caught.value.errors] == [
        "row 2.code: '239873008' is not a SNOMED CT concept id (check digit)",
        "row 3.code: missing",
        "row 3.display: missing",
        "row 3.pathway: 'hips' is not knee-hip, back or both",
        "row 4.colour: unknown column",
        "row 5: expected an object with code, display and pathway",
    ]
