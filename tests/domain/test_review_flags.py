"""Review flags and locations: the interface the FHIR reader uses (``assess(ref, flags, where=...)``).

A flagged criterion is never met: met becomes unknown with the flag's reason first; unknown stays unknown
with the flag's reason first; not-met stays not-met with the flag's reason after the rule's own.
"""

from __future__ import annotations

from typing import Any

import pytest

from escape_fhir.domain import PATHWAY_CRITERIA, Decision, Outcome, ReviewFlag, assess, load_referral

from . import changed, load_table

BASES: dict[str, dict[str, Any]] = load_table("eligibility.json")["bases"]
FLAG = ReviewFlag("startback", "STarT Back response at Bundle.entry[5].resource is in-progress")


def _criterion(result: Any, code: str) -> tuple[str, str]:
    found = {c.code: (c.outcome.value, c.reason) for c in result.criteria}
    return found[code]


def test_a_flag_turns_met_into_unknown_flag_reason_first() -> None:
    result = assess(load_referral(BASES["back"]), [FLAG])
    assert _criterion(result, "startback") == (
        "unknown",
        "STarT Back response at Bundle.entry[5].resource is in-progress; medium risk (total 4, psychosocial 2)",
    )
    assert result.decision is Decision.NEEDS_REVIEW
    assert [c.code for c in result.criteria if c.outcome is not Outcome.MET] == ["startback"]


def test_a_flag_keeps_not_met_and_adds_its_reason_after() -> None:
    high = {"startBackResult": {"risk": "high", "total": 7, "psychosocial": 4}}
    referral = load_referral(changed(BASES["back"], {"unset": ["startBack"], "set": high}))
    outcome, reason = _criterion(assess(referral, [FLAG]), "startback")
    assert outcome == "not-met"
    assert reason.startswith("high risk (total 7, psychosocial 4): not this programme")
    assert reason.endswith("; STarT Back response at Bundle.entry[5].resource is in-progress")


def test_a_flag_on_unknown_puts_its_reason_first() -> None:
    referral = load_referral(changed(BASES["back"], {"unset": ["eligibility.independentlyMobile"]}))
    flag = ReviewFlag("mobility", "two answers disagree at Bundle.entry[4].resource.item[0]")
    assert _criterion(assess(referral, [flag]), "mobility") == (
        "unknown",
        "two answers disagree at Bundle.entry[4].resource.item[0]; independent mobility not stated",
    )


def test_two_flags_on_one_criterion_keep_their_order() -> None:
    flags = [ReviewFlag("red-flags", "first"), ReviewFlag("red-flags", "second")]
    outcome, reason = _criterion(assess(load_referral(BASES["knee-hip"]), flags), "red-flags")
    assert outcome == "unknown"
    assert reason.startswith("first; second; no coded diagnosis to check")


def test_no_flags_changes_nothing() -> None:
    referral = load_referral(BASES["knee-hip"])
    assert assess(referral, []) == assess(referral)


@pytest.mark.parametrize(
    ("criterion", "reason", "message"),
    [
        pytest.param("colour", "x", "not an eligibility criterion", id="unknown criterion"),
        pytest.param("age", "  ", "without a reason", id="blank reason"),
    ],
)
def test_a_flag_must_name_a_criterion_and_a_reason(criterion: str, reason: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReviewFlag(criterion, reason)


def test_a_flag_for_a_criterion_the_pathway_does_not_assess_is_refused_not_dropped() -> None:
    assert "startback" not in PATHWAY_CRITERIA[load_referral(BASES["knee-hip"]).pathway]
    with pytest.raises(ValueError, match="startback, not assessed on the knee-hip pathway"):
        assess(load_referral(BASES["knee-hip"]), [FLAG])


def test_where_names_the_fhir_location_of_a_diagnosis() -> None:
    change = {"set": {"diagnoses": [{"code": "279039007"}, {"code": "192970008"}]}}
    referral = load_referral(changed(BASES["back"], change))
    where = {"diagnoses[1]": "Bundle.entry[7].resource.code", "affectedSites": "Bundle.entry[2].resource"}
    outcome, reason = _criterion(assess(referral, where=where), "red-flags")
    assert outcome == "not-met"
    assert reason.startswith("red flag or exclusion: 192970008 Cauda equina syndrome (found at Bundle.entry[7]")
    # Without a location for it, the referral field is named.
    _, without = _criterion(assess(referral), "red-flags")
    assert "(found at diagnoses[1])" in without


def test_red_flags_none_is_the_built_in_table_and_an_empty_table_finds_nothing() -> None:
    referral = load_referral(changed(BASES["back"], {"set": {"diagnoses": [{"code": "192970008"}]}}))
    assert assess(referral, red_flags=None) == assess(referral)
    outcome, reason = _criterion(assess(referral, red_flags={}), "red-flags")
    assert (outcome, reason.split(";")[0]) == ("met", "no red flag or exclusion among the 1 coded diagnosis")


def test_where_names_both_sides_of_a_conflict() -> None:
    change = {"set": {"eligibility.clinicalDiagnosisOfOsteoarthritis": False, "diagnoses": [{"code": "239873007"}]}}
    referral = load_referral(changed(BASES["knee-hip"], change))
    where = {
        "eligibility.clinicalDiagnosisOfOsteoarthritis": "Bundle.entry[6].resource.item[3].answer[0]",
        "diagnoses[0]": "Bundle.entry[8].resource.code",
    }
    assert _criterion(assess(referral, where=where), "diagnosis") == (
        "unknown",
        "answer says no clinical diagnosis of knee or hip osteoarthritis (found at "
        "Bundle.entry[6].resource.item[3].answer[0]), but 239873007 Osteoarthritis of knee (found at "
        "Bundle.entry[8].resource.code) is coded for an affected joint (left knee): check which is right",
    )


def test_where_names_both_sides_of_a_duration_disagreement() -> None:
    referral = load_referral(changed(BASES["knee-hip"], {"set": {"symptomOnsetDate": "2024-12-10"}}))
    where = {"symptomOnsetDate": "Bundle.entry[5].resource.item[2]", "symptomDurationMonths": "Obs.value"}
    assert _criterion(assess(referral, where=where), "duration") == (
        "unknown",
        "symptoms since 2024-12-10: 3 months to the referral date (found at Bundle.entry[5].resource.item[2]), "
        "but the duration is given as 6 months (found at Obs.value): check which is right",
    )
