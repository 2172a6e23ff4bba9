"""Eligibility rules of the two ESCAPE-pain programmes (DESIGN.md, "The programme" table).

Each case in ``cases/eligibility.json`` breaks one thing in a valid, eligible referral of its pathway
(STYLE.md habit 3) and names the criteria it expects to change, with their outcome and the reason a
triage clinician reads. Every criterion a case does not name must stay met.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from escape_fhir.domain import Decision, EligibilityResult, Outcome, Pathway, assess, load_referral

from . import changed, load_table

TABLE = load_table("eligibility.json")
BASES: dict[str, dict[str, Any]] = TABLE["bases"]
CASES: list[dict[str, Any]] = TABLE["cases"]

CRITERIA = {
    "knee-hip": [
        "age",
        "site",
        "duration",
        "diagnosis",
        "red-flags",
        "supervised-exercise",
        "mobility",
        "contraindications",
    ],
    "back": [
        "age",
        "site",
        "duration",
        "diagnosis",
        "red-flags",
        "startback",
        "mobility",
        "group",
        "contraindications",
        "benefit",
    ],
}


def _assess(case: dict[str, Any]) -> EligibilityResult:
    return assess(load_referral(changed(BASES[case["base"]], case)))


@pytest.mark.parametrize("pathway", ["knee-hip", "back"])
def test_base_referral_is_eligible_on_every_criterion(pathway: str) -> None:
    result = assess(load_referral(BASES[pathway]))
    assert result.pathway is Pathway(pathway)
    assert result.decision is Decision.ELIGIBLE
    assert [c.code for c in result.criteria] == CRITERIA[pathway]
    assert all(c.outcome is Outcome.MET for c in result.criteria)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    result = _assess(case)
    got = {c.code: (c.outcome.value, c.reason) for c in result.criteria}
    assert list(got) == CRITERIA[case["base"]]
    expected = {code: ("met", got[code][1]) for code in got}  # unnamed criteria: met, any reason
    expected.update({code: tuple(value) for code, value in case["expect"].items()})
    assert got == expected
    assert result.decision.value == case["decision"]


@pytest.mark.parametrize("pathway", ["knee-hip", "back"])
def test_table_covers_both_sides_of_every_criterion(pathway: str) -> None:
    seen: dict[str, set[str]] = {code: {"met"} for code in CRITERIA[pathway]}  # the base: all met
    for case in CASES:
        if case["base"] == pathway:
            for code, (outcome, _) in case["expect"].items():
                seen[code].add(outcome)
    # A site that does not fit the pathway is refused when the referral is loaded, so "site" is never
    # not-met here (only met, or unknown when no site is stated).
    # "red-flags" is never unknown from the rules (a coded red flag is not met; no code, met with words that
    # say so); only a reader's review flag makes it unknown (test_review_flags.py).
    only = {"site": {"met", "unknown"}, "red-flags": {"met", "not-met"}}
    wanted = {code: only.get(code, {"met", "not-met", "unknown"}) for code in CRITERIA[pathway]}
    assert seen == wanted


def test_decision_precedence_is_covered() -> None:
    def outcomes(case: dict[str, Any]) -> set[str]:
        return {outcome for outcome, _ in case["expect"].values()}

    mixed = [c for c in CASES if {"not-met", "unknown"} <= outcomes(c)]
    assert mixed and all(c["decision"] == "not-eligible" for c in mixed)


def test_case_ids_are_unique() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))


# Words a triage clinician should never see in a reason: Python values and enum reprs.
_NOT_FOR_CLINICIANS = re.compile(r"\b(None|True|False)\b|<|Site\.|Risk\.|Outcome\.")


def test_reasons_read_as_plain_text() -> None:
    results = [assess(load_referral(b)) for b in BASES.values()] + [_assess(c) for c in CASES]
    reasons = {c.reason for r in results for c in r.criteria}
    assert reasons
    assert sorted(r for r in reasons if _NOT_FOR_CLINICIANS.search(r) or not r.strip()) == []


def test_as_dict_shape() -> None:
    case = next(c for c in CASES if c["id"] == "back no STarT Back screening")
    as_dict = _assess(case).as_dict()
    assert as_dict["pathway"] == "back"
    assert as_dict["decision"] == "needs-review"
    assert [c["code"] for c in as_dict["criteria"]] == CRITERIA["back"]
    assert as_dict["criteria"][5] == {
        "code": "startback",
        "title": "STarT Back risk",
        "outcome": "unknown",
        "reason": "no STarT Back screening",
    }
    assert all(set(c) == {"code", "title", "outcome", "reason"} for c in as_dict["criteria"])
