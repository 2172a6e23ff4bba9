"""Eligibility rules for the two ESCAPE-pain programmes.

The table in DESIGN.md ("The programme and the people who use this software"):

* knees/hips: age 45 or over; chronic knee/hip joint pain for at least 3 months; clinical diagnosis of
  osteoarthritis; needs a supervised exercise programme; independently mobile; no contraindications.
* backs: adult (18 or over); non-specific low back pain for more than 3 months, or recurrent episodes
  (with or without radicular pain); STarT Back risk medium (low may be accepted when the person would
  benefit and wishes to take part: a flagged, reviewable decision); independently mobile and able to join
  a group exercise programme with minimal supervision; no contraindications; would benefit from a group
  rehabilitation programme.

Every criterion is reported as met / not-met / unknown with a reason a triage clinician can read.
The decision: any criterion not met -> ``not-eligible``; otherwise any unknown -> ``needs-review``;
otherwise ``eligible``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from escape_fhir.domain.referral import (
    KNEE_HIP_SITES,
    NON_SPECIFIC_LOW_BACK_PAIN_CODES,
    OSTEOARTHRITIS_CODES,
    OSTEOARTHRITIS_JOINTS,
    Pathway,
    Referral,
    Site,
)
from escape_fhir.domain.startback import Risk

KNEE_HIP_MIN_AGE = 45
BACK_MIN_AGE = 18
MIN_DURATION_MONTHS = 3


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


class Decision(StrEnum):
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not-eligible"
    NEEDS_REVIEW = "needs-review"


@dataclass(frozen=True)
class Criterion:
    code: str  # a code of the project's eligibility-criterion CodeSystem
    title: str
    outcome: Outcome
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "title": self.title, "outcome": self.outcome.value, "reason": self.reason}


@dataclass(frozen=True)
class EligibilityResult:
    pathway: Pathway
    decision: Decision
    criteria: tuple[Criterion, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pathway": self.pathway.value,
            "decision": self.decision.value,
            "criteria": [c.as_dict() for c in self.criteria],
        }


#: Title of every criterion, by code. The codes are the project's CodeSystem eligibility-criterion.
CRITERIA: dict[str, str] = {
    "age": "Age",
    "site": "Affected site",
    "duration": "Symptom duration",
    "diagnosis": "Diagnosis",
    "supervised-exercise": "Needs a supervised exercise programme",
    "mobility": "Independently mobile",
    "contraindications": "No contraindications to exercise",
    "group": "Able to join a group with minimal supervision",
    "benefit": "Would benefit from a group rehabilitation programme",
    "startback": "STarT Back risk",
}


def age_on(birth: date, on: date) -> int:
    years = on.year - birth.year
    return years - 1 if (on.month, on.day) < (birth.month, birth.day) else years


def _c(code: str, outcome: Outcome, reason: str) -> Criterion:
    return Criterion(code, CRITERIA[code], outcome, reason)


def _age(ref: Referral, minimum: int) -> Criterion:
    age = age_on(ref.patient.birth_date, ref.referral_date)
    if age >= minimum:
        return _c("age", Outcome.MET, f"age {age} is {minimum} or over")
    return _c("age", Outcome.NOT_MET, f"age {age} is under {minimum}")


def _yes_no(code: str, answer: bool | None, wanted: bool, yes: str, no: str, unanswered: str) -> Criterion:
    if answer is None:
        return _c(code, Outcome.UNKNOWN, unanswered)
    return _c(code, Outcome.MET, yes) if answer is wanted else _c(code, Outcome.NOT_MET, no)


def _mobility(ref: Referral) -> Criterion:
    return _yes_no(
        "mobility",
        ref.eligibility.independently_mobile,
        True,
        "independently mobile",
        "not independently mobile",
        "independent mobility not stated",
    )


def _contraindications(ref: Referral) -> Criterion:
    return _yes_no(
        "contraindications",
        ref.eligibility.contraindications_to_exercise,
        False,
        "no contraindications to exercise",
        "has contraindications to exercise",
        "contraindications to exercise not stated",
    )


def _duration(ref: Referral, *, strictly_more: bool, recurrent: bool | None) -> Criterion:
    months = ref.symptom_duration_months
    bound = f"{'more than' if strictly_more else 'at least'} {MIN_DURATION_MONTHS}"
    if months is not None and (months > MIN_DURATION_MONTHS if strictly_more else months >= MIN_DURATION_MONTHS):
        return _c("duration", Outcome.MET, f"symptoms for {months} months ({bound})")
    if recurrent:
        return _c("duration", Outcome.MET, "recurrent episodes of low back pain")
    said = f"symptoms for {months} months (needs {bound})" if months is not None else "symptom duration not stated"
    if ref.pathway is Pathway.BACK:
        # Backs: more than 3 months OR recurrent episodes; an unanswered recurrence question leaves it open.
        if recurrent is None:
            return _c("duration", Outcome.UNKNOWN, f"{said} and recurrent episodes not stated")
        said += " and episodes not recurrent"
    return _c("duration", Outcome.UNKNOWN if months is None else Outcome.NOT_MET, said)


def _diagnosis(ref: Referral, answer: bool | None, codes: dict[str, str], what: str) -> Criterion:
    if answer is True:
        return _c("diagnosis", Outcome.MET, f"clinical diagnosis of {what}")
    if answer is False:
        return _c("diagnosis", Outcome.NOT_MET, f"no clinical diagnosis of {what}")
    coded = [d for d in ref.diagnoses if d.code in codes]
    # An osteoarthritis code counts only for a joint of its kind that is affected (a hip code says nothing
    # about a knee referral); codes without a joint (low back pain) always count.
    fitting = [
        d for d in coded if OSTEOARTHRITIS_JOINTS.get(d.code, frozenset(ref.affected_sites)) & set(ref.affected_sites)
    ]
    if fitting:
        d = fitting[0]
        return _c("diagnosis", Outcome.MET, f"diagnosis {d.code} {codes[d.code]}")
    if coded:
        d = coded[0]
        sites = ", ".join(s.value.replace("-", " ") for s in ref.affected_sites)
        return _c(
            "diagnosis",
            Outcome.UNKNOWN,
            f"diagnosis {d.code} {codes[d.code]} is not about the affected joint ({sites})",
        )
    return _c("diagnosis", Outcome.UNKNOWN, f"no diagnosis of {what} recorded")


def _knee_hip(ref: Referral) -> list[Criterion]:
    sites = [s for s in ref.affected_sites if s in KNEE_HIP_SITES]
    answers = ref.eligibility
    return [
        _age(ref, KNEE_HIP_MIN_AGE),
        _c("site", Outcome.MET, "pain in " + ", ".join(s.value.replace("-", " ") for s in sites))
        if sites
        else _c("site", Outcome.NOT_MET, "no knee or hip affected"),
        _duration(ref, strictly_more=False, recurrent=None),
        _diagnosis(
            ref, answers.clinical_diagnosis_of_osteoarthritis, OSTEOARTHRITIS_CODES, "knee or hip osteoarthritis"
        ),
        _yes_no(
            "supervised-exercise",
            answers.needs_supervised_exercise,
            True,
            "needs a supervised exercise programme",
            "does not need a supervised exercise programme",
            "need for a supervised exercise programme not stated",
        ),
        _mobility(ref),
        _contraindications(ref),
    ]


def _startback(ref: Referral) -> Criterion:
    result = ref.effective_start_back()
    if result is None:
        return _c("startback", Outcome.UNKNOWN, "no STarT Back screening")
    risk = Risk(result.risk)
    known = (("total", result.total), ("psychosocial", result.psychosocial))
    figures = ", ".join(f"{name} {value}" for name, value in known if value is not None) or "score not given"
    if risk is Risk.MEDIUM:
        return _c("startback", Outcome.MET, f"medium risk ({figures})")
    if risk is Risk.HIGH:
        return _c("startback", Outcome.NOT_MET, f"high risk ({figures}): medium risk expected")
    # Low risk may be accepted when the person would benefit and wishes to take part, but only after a
    # clinician's review: never a silent pass or fail (DESIGN.md; issue: "gives needs-review").
    wishes = {True: "wishes to take part", False: "does not wish to take part", None: "wish to take part not stated"}
    benefit = {True: "would benefit", False: "would not benefit", None: "benefit not stated"}
    answers = ref.eligibility
    said = f"{wishes[answers.wishes_to_take_part]}, {benefit[answers.would_benefit_from_group]}"
    return _c("startback", Outcome.UNKNOWN, f"low risk ({figures}), {said}: clinician review needed")


def _back(ref: Referral) -> list[Criterion]:
    answers = ref.eligibility
    return [
        _age(ref, BACK_MIN_AGE),
        _c("site", Outcome.MET, "low back pain")
        if Site.LOWER_BACK in ref.affected_sites
        else _c("site", Outcome.NOT_MET, "lower back not affected"),
        _duration(ref, strictly_more=True, recurrent=answers.recurrent_episodes),
        _diagnosis(
            ref, answers.non_specific_low_back_pain, NON_SPECIFIC_LOW_BACK_PAIN_CODES, "non-specific low back pain"
        ),
        _startback(ref),
        _mobility(ref),
        _yes_no(
            "group",
            answers.able_to_join_group,
            True,
            "able to join a group with minimal supervision",
            "not able to join a group with minimal supervision",
            "ability to join a group not stated",
        ),
        _contraindications(ref),
        _yes_no(
            "benefit",
            answers.would_benefit_from_group,
            True,
            "would benefit from a group rehabilitation programme",
            "would not benefit from a group rehabilitation programme",
            "benefit from a group programme not stated",
        ),
    ]


RULES: dict[Pathway, Callable[[Referral], list[Criterion]]] = {Pathway.KNEE_HIP: _knee_hip, Pathway.BACK: _back}


@dataclass(frozen=True)
class ReviewFlag:
    """A criterion a clinician must look at: the fact behind it is missing, unclear or contradictory."""

    criterion: str  # a code of CRITERIA
    reason: str


def _flagged(criterion: Criterion, flags: Sequence[ReviewFlag]) -> Criterion:
    reasons = [f.reason for f in flags if f.criterion == criterion.code]
    if not reasons:
        return criterion
    outcome = Outcome.NOT_MET if criterion.outcome is Outcome.NOT_MET else Outcome.UNKNOWN
    return Criterion(criterion.code, criterion.title, outcome, "; ".join([*reasons, criterion.reason]))


def assess(ref: Referral, flags: Sequence[ReviewFlag] = ()) -> EligibilityResult:
    """The decision; a flagged criterion is never met (met becomes unknown, with the flag's reason first)."""
    criteria = tuple(_flagged(c, flags) for c in RULES[ref.pathway](ref))
    outcomes = {c.outcome for c in criteria}
    if Outcome.NOT_MET in outcomes:
        decision = Decision.NOT_ELIGIBLE
    elif Outcome.UNKNOWN in outcomes:
        decision = Decision.NEEDS_REVIEW
    else:
        decision = Decision.ELIGIBLE
    return EligibilityResult(ref.pathway, decision, criteria)
