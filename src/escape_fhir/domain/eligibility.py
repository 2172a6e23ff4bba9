"""Eligibility rules for the two ESCAPE-pain programmes.

The table in DESIGN.md ("The programme and the people who use this software"):

* knees/hips: age 45 or over; chronic knee/hip joint pain for at least 3 months; clinical diagnosis of
  osteoarthritis; needs a supervised exercise programme; independently mobile; no contraindications.
* backs: adult (18 or over); non-specific low back pain for more than 3 months, or recurrent episodes
  (with or without radicular pain); STarT Back risk medium (low may be accepted when the person would
  benefit and wishes to take part: a flagged, reviewable decision); independently mobile and able to join
  a group exercise programme with minimal supervision; no contraindications; would benefit from a group
  rehabilitation programme.

Both: no red flag or exclusion among the coded diagnoses (:mod:`escape_fhir.domain.red_flags`).

Every criterion is reported as met / not-met / unknown with a reason a triage clinician can read. Where a
rule cannot settle a criterion from what it is given (a conflict between an answer and a code, whole months
at the boundary, a declined wish to take part) it says ``unknown`` with both sides, never a guess. Each
rule, its source and its test are in docs/clinical-safety.md.

The decision: any criterion not met -> ``not-eligible``; otherwise any unknown -> ``needs-review``;
otherwise ``eligible``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from escape_fhir.domain.criteria import (
    CRITERIA,
    PATHWAY_CRITERIA,
    Criterion,
    Decision,
    EligibilityResult,
    Outcome,
    ReviewFlag,
)
from escape_fhir.domain.durations import calendar_months
from escape_fhir.domain.red_flags import RED_FLAGS, RedFlag
from escape_fhir.domain.referral import (
    KNEE_HIP_SITES,
    LOW_BACK_PAIN_CODES,
    NON_SPECIFIC_LOW_BACK_PAIN_CODES,
    OSTEOARTHRITIS_CODES,
    OSTEOARTHRITIS_JOINTS,
    Diagnosis,
    Pathway,
    Referral,
    Site,
    age_on,
)
from escape_fhir.domain.startback import Risk

__all__ = [
    "BACK_MIN_AGE",
    "CRITERIA",
    "KNEE_HIP_MIN_AGE",
    "MIN_DURATION_MONTHS",
    "PATHWAY_CRITERIA",
    "Criterion",
    "Decision",
    "EligibilityResult",
    "Outcome",
    "ReviewFlag",
    "age_on",
    "assess",
    "calendar_months",
]

KNEE_HIP_MIN_AGE = 45
BACK_MIN_AGE = 18
MIN_DURATION_MONTHS = 3
#: Said after a red-flag reason that found nothing: codes can show a red flag, never its absence.
SCREEN_AT_TRIAGE = "red flags are still screened at triage"


@dataclass(frozen=True)
class _Facts:
    """What the rules read: the referral, the red-flag table, and where each fact was found."""

    ref: Referral
    red_flags: Mapping[str, RedFlag]
    where: Mapping[str, str] = field(default_factory=dict)

    def diagnosis(self, i: int, d: Diagnosis, names: Mapping[str, str]) -> str:
        """``239873007 Osteoarthritis of knee (found at Bundle.entry[3].resource.code)``."""
        display = names.get(d.code) or d.display or "no display"
        return f"{d.code} {display} (found at {self.where.get(f'diagnoses[{i}]', f'diagnoses[{i}]')})"

    def at(self, path: str) -> str:
        """`` (found at <FHIR location>)`` for a referral field the reader located, else nothing."""
        return f" (found at {self.where[path]})" if path in self.where else ""

    def sites(self) -> str:
        sites = self.ref.affected_sites
        return ", ".join(s.value.replace("-", " ") for s in sites) if sites else "affected site not stated"


def _c(code: str, outcome: Outcome, reason: str) -> Criterion:
    return Criterion(code, CRITERIA[code], outcome, reason)


def _age(f: _Facts, minimum: int) -> Criterion:
    birth = f.ref.patient.birth_date
    if birth is None:
        return _c("age", Outcome.UNKNOWN, "birth date not stated")
    age = age_on(birth, f.ref.referral_date)
    if age >= minimum:
        return _c("age", Outcome.MET, f"age {age} is {minimum} or over")
    return _c("age", Outcome.NOT_MET, f"age {age} is under {minimum}")


def _site(f: _Facts, wanted: frozenset[Site], missing: str) -> Criterion:
    if not f.ref.affected_sites:
        return _c("site", Outcome.UNKNOWN, "affected site not stated")
    sites = [s for s in f.ref.affected_sites if s in wanted]
    if not sites:
        return _c("site", Outcome.NOT_MET, missing)
    if f.ref.pathway is Pathway.BACK:
        return _c("site", Outcome.MET, "low back pain")
    return _c("site", Outcome.MET, "pain in " + ", ".join(s.value.replace("-", " ") for s in sites))


def _yes_no(code: str, answer: bool | None, wanted: bool, yes: str, no: str, unanswered: str) -> Criterion:
    if answer is None:
        return _c(code, Outcome.UNKNOWN, unanswered)
    return _c(code, Outcome.MET, yes) if answer is wanted else _c(code, Outcome.NOT_MET, no)


def _mobility(f: _Facts) -> Criterion:
    return _yes_no(
        "mobility",
        f.ref.eligibility.independently_mobile,
        True,
        "independently mobile",
        "not independently mobile",
        "independent mobility not stated",
    )


def _contraindications(f: _Facts) -> Criterion:
    return _yes_no(
        "contraindications",
        f.ref.eligibility.contraindications_to_exercise,
        False,
        "no contraindications to exercise",
        "has contraindications to exercise",
        "contraindications to exercise not stated",
    )


# --- duration ---------------------------------------------------------------------------------------------


def _enough(months: int, days: int, strictly_more: bool) -> bool:
    if strictly_more:
        return months > MIN_DURATION_MONTHS or (months == MIN_DURATION_MONTHS and days > 0)
    return months >= MIN_DURATION_MONTHS


def _duration_said(f: _Facts, strictly_more: bool) -> tuple[Outcome, str]:
    """The duration as far as the referral settles it: met, not met, or unknown with why."""
    ref, bound = f.ref, f"{'more than' if strictly_more else 'at least'} {MIN_DURATION_MONTHS}"
    stated, onset = ref.symptom_duration_months, ref.symptom_onset_date
    if onset is not None:
        months, days = calendar_months(onset, ref.referral_date)
        span = f"symptoms since {onset}: {months} months" + (
            f" and {days} day{'s' if days > 1 else ''}" if days else ""
        )
        # A person rounds "3 months and 20 days" to 4: a stated figure agrees with the completed months or,
        # when part of a month has passed, the next one.
        if stated is not None and stated not in {months, months + (1 if days else 0)}:
            return Outcome.UNKNOWN, (
                f"{span} to the referral date{f.at('symptomOnsetDate')}, but the duration is given as {stated} "
                f"months{f.at('symptomDurationMonths')}: check which is right"
            )
        if _enough(months, days, strictly_more):
            return Outcome.MET, f"{span} ({bound} months)"
        return Outcome.NOT_MET, f"{span} (needs {bound})"
    if stated is None:
        return Outcome.UNKNOWN, "symptom duration not stated"
    if strictly_more and stated == MIN_DURATION_MONTHS:
        # Whole months cannot say whether 3 is more than 3 (issue 9): the onset date would.
        return Outcome.UNKNOWN, (
            f"symptoms for {stated} whole months (needs {bound}: whole months cannot tell, an onset date would)"
        )
    if _enough(stated, 0, strictly_more):
        return Outcome.MET, f"symptoms for {stated} months ({bound})"
    return Outcome.NOT_MET, f"symptoms for {stated} months (needs {bound})"


def _duration(f: _Facts, *, strictly_more: bool, recurrent: bool | None) -> Criterion:
    outcome, said = _duration_said(f, strictly_more)
    if outcome is Outcome.MET:
        return _c("duration", outcome, said)
    if f.ref.pathway is Pathway.BACK:
        # Backs: more than 3 months OR recurrent episodes; an unanswered recurrence question leaves it open.
        if recurrent:
            return _c("duration", Outcome.MET, "recurrent episodes of low back pain")
        if recurrent is None:
            return _c("duration", Outcome.UNKNOWN, f"{said} and recurrent episodes not stated")
        said += " and episodes not recurrent"
    return _c("duration", outcome, said)


# --- diagnosis -----------------------------------------------------------------------------------------------

#: The referral field paths of the two diagnosis answers, as keys of ``where``.
OA_ANSWER = "eligibility.clinicalDiagnosisOfOsteoarthritis"
LBP_ANSWER = "eligibility.nonSpecificLowBackPain"


def _oa_diagnosis(f: _Facts) -> Criterion:
    answer, what = f.ref.eligibility.clinical_diagnosis_of_osteoarthritis, "knee or hip osteoarthritis"
    coded = [(i, d) for i, d in enumerate(f.ref.diagnoses) if d.code in OSTEOARTHRITIS_CODES]
    # An osteoarthritis code counts only for a joint of its kind that is affected (a hip code says nothing
    # about a knee referral).
    affected = set(f.ref.affected_sites)
    fitting = [(i, d) for i, d in coded if OSTEOARTHRITIS_JOINTS[d.code] & affected]
    sites = f.sites()
    if answer is False and fitting:
        said = f.diagnosis(*fitting[0], OSTEOARTHRITIS_CODES)
        return _c(
            "diagnosis",
            Outcome.UNKNOWN,
            f"answer says no clinical diagnosis of {what}{f.at(OA_ANSWER)}, but {said} is coded "
            f"for an affected joint ({sites}): check which is right",
        )
    if answer is False:
        return _c("diagnosis", Outcome.NOT_MET, f"no clinical diagnosis of {what}")
    if coded and not fitting:
        said = f.diagnosis(*coded[0], OSTEOARTHRITIS_CODES)
        if answer is True:
            return _c(
                "diagnosis",
                Outcome.UNKNOWN,
                f"answer says clinical diagnosis of {what}{f.at(OA_ANSWER)}, but the "
                f"osteoarthritis code {said} is not about the affected joint ({sites}): check which joint",
            )
        return _c("diagnosis", Outcome.UNKNOWN, f"diagnosis {said} is not about the affected joint ({sites})")
    if answer is True:
        return _c("diagnosis", Outcome.MET, f"clinical diagnosis of {what}")
    if fitting:
        return _c("diagnosis", Outcome.MET, f"diagnosis {f.diagnosis(*fitting[0], OSTEOARTHRITIS_CODES)}")
    return _c("diagnosis", Outcome.UNKNOWN, f"no diagnosis of {what} recorded")


def _back_diagnosis(f: _Facts) -> Criterion:
    answer, what = f.ref.eligibility.non_specific_low_back_pain, "non-specific low back pain"
    diagnoses = list(enumerate(f.ref.diagnoses))
    if answer is True:
        names = {code: flag.display for code, flag in f.red_flags.items()}
        specific = [(i, d) for i, d in diagnoses if d.code in names and Pathway.BACK in f.red_flags[d.code].pathways]
        if specific:
            said = f.diagnosis(*specific[0], names)
            return _c(
                "diagnosis",
                Outcome.UNKNOWN,
                f"answer says {what}{f.at(LBP_ANSWER)}, but {said} is a specific cause: check which is right",
            )
        return _c("diagnosis", Outcome.MET, f"clinical diagnosis of {what}")
    if answer is False:
        return _c("diagnosis", Outcome.NOT_MET, f"no clinical diagnosis of {what}")
    stating = [(i, d) for i, d in diagnoses if d.code in NON_SPECIFIC_LOW_BACK_PAIN_CODES]
    if stating:
        return _c("diagnosis", Outcome.MET, f"diagnosis {f.diagnosis(*stating[0], NON_SPECIFIC_LOW_BACK_PAIN_CODES)}")
    generic = [(i, d) for i, d in diagnoses if d.code in LOW_BACK_PAIN_CODES]
    if generic:
        # Issue 9: "low back pain" and "chronic low back pain" do not say that specific causes were excluded.
        said = f.diagnosis(*generic[0], LOW_BACK_PAIN_CODES)
        return _c(
            "diagnosis",
            Outcome.UNKNOWN,
            f"diagnosis {said} does not say that specific causes were excluded: {what} not confirmed",
        )
    return _c("diagnosis", Outcome.UNKNOWN, f"no diagnosis of {what} recorded")


def _red_flags(f: _Facts) -> Criterion:
    pathway = f.ref.pathway
    flags = {code: flag for code, flag in f.red_flags.items() if pathway in flag.pathways}
    names = {code: flag.display for code, flag in flags.items()}
    found = [(i, d) for i, d in enumerate(f.ref.diagnoses) if d.code in flags]
    if found:
        said = "; ".join(f"{f.diagnosis(i, d, names)}, {flags[d.code].source}" for i, d in found)
        return _c("red-flags", Outcome.NOT_MET, f"red flag or exclusion: {said}")
    count = len(f.ref.diagnoses)
    if count == 0:
        # Met, not unknown: most referrals carry no red-flag code at all, and the triage clinician screens
        # red flags on every referral; the words say that nothing coded was there to check
        # (docs/clinical-safety.md, H-01).
        return _c("red-flags", Outcome.MET, f"no coded diagnosis to check for red flags; {SCREEN_AT_TRIAGE}")
    plural = "diagnosis" if count == 1 else "diagnoses"
    return _c(
        "red-flags", Outcome.MET, f"no red flag or exclusion among the {count} coded {plural}; {SCREEN_AT_TRIAGE}"
    )


# --- the pathways --------------------------------------------------------------------------------------------


def _knee_hip(f: _Facts) -> list[Criterion]:
    answers = f.ref.eligibility
    return [
        _age(f, KNEE_HIP_MIN_AGE),
        _site(f, KNEE_HIP_SITES, "no knee or hip affected"),
        _duration(f, strictly_more=False, recurrent=None),
        _oa_diagnosis(f),
        _red_flags(f),
        _yes_no(
            "supervised-exercise",
            answers.needs_supervised_exercise,
            True,
            "needs a supervised exercise programme",
            "does not need a supervised exercise programme",
            "need for a supervised exercise programme not stated",
        ),
        _mobility(f),
        _contraindications(f),
    ]


#: The next step the STarT Back approach gives a high-risk person: psychologically informed physiotherapy
#: (Keele's stratified care, Hill et al., Lancet 2011; NICE NG59 1.1.2-1.1.3 risk stratification).
HIGH_RISK_NEXT_STEP = (
    "not this programme; next step: psychologically informed physiotherapy "
    "(STarT Back stratified care for high risk, NICE NG59 1.1.2)"
)


def _startback(f: _Facts) -> Criterion:
    result = f.ref.effective_start_back()
    if result is None:
        return _c("startback", Outcome.UNKNOWN, "no STarT Back screening")
    risk = Risk(result.risk)
    known = (("total", result.total), ("psychosocial", result.psychosocial))
    figures = ", ".join(f"{name} {value}" for name, value in known if value is not None) or "score not given"
    answers = f.ref.eligibility
    wishes = {True: "wishes to take part", False: "does not wish to take part", None: "wish to take part not stated"}
    if risk is Risk.HIGH:
        return _c("startback", Outcome.NOT_MET, f"high risk ({figures}): {HIGH_RISK_NEXT_STEP}")
    if risk is Risk.MEDIUM:
        if answers.wishes_to_take_part is False:
            # A declined wish to take part is never a pass, at any risk (issue 9).
            return _c(
                "startback",
                Outcome.UNKNOWN,
                f"medium risk ({figures}), but does not wish to take part: talk it through with the person",
            )
        return _c("startback", Outcome.MET, f"medium risk ({figures})")
    # Low risk may be accepted when the person would benefit and wishes to take part, but only after a
    # clinician's review: never a silent pass or fail (DESIGN.md, "The programme").
    benefit = {True: "would benefit", False: "would not benefit", None: "benefit not stated"}
    said = f"{wishes[answers.wishes_to_take_part]}, {benefit[answers.would_benefit_from_group]}"
    return _c("startback", Outcome.UNKNOWN, f"low risk ({figures}), {said}: clinician review needed")


def _back(f: _Facts) -> list[Criterion]:
    answers = f.ref.eligibility
    return [
        _age(f, BACK_MIN_AGE),
        _site(f, frozenset({Site.LOWER_BACK}), "lower back not affected"),
        _duration(f, strictly_more=True, recurrent=answers.recurrent_episodes),
        _back_diagnosis(f),
        _red_flags(f),
        _startback(f),
        _mobility(f),
        _yes_no(
            "group",
            answers.able_to_join_group,
            True,
            "able to join a group with minimal supervision",
            "not able to join a group with minimal supervision",
            "ability to join a group not stated",
        ),
        _contraindications(f),
        _yes_no(
            "benefit",
            answers.would_benefit_from_group,
            True,
            "would benefit from a group rehabilitation programme",
            "would not benefit from a group rehabilitation programme",
            "benefit from a group programme not stated",
        ),
    ]


RULES: dict[Pathway, Callable[[_Facts], list[Criterion]]] = {Pathway.KNEE_HIP: _knee_hip, Pathway.BACK: _back}


def _flagged(criterion: Criterion, flags: Sequence[ReviewFlag]) -> Criterion:
    """A flagged criterion is never met: met becomes unknown, the flags' reasons first; a not-met stays
    not-met (the flags cannot make it pass) with their reasons added after the rule's own."""
    reasons = [flag.reason for flag in flags if flag.criterion == criterion.code]
    if not reasons:
        return criterion
    if criterion.outcome is Outcome.NOT_MET:
        return _c(criterion.code, Outcome.NOT_MET, "; ".join([criterion.reason, *reasons]))
    return _c(criterion.code, Outcome.UNKNOWN, "; ".join([*reasons, criterion.reason]))


def assess(
    ref: Referral,
    flags: Sequence[ReviewFlag] = (),
    *,
    red_flags: Mapping[str, RedFlag] | None = None,
    where: Mapping[str, str] | None = None,
) -> EligibilityResult:
    """Assess a referral against its pathway's criteria (:data:`PATHWAY_CRITERIA`).

    ``flags`` are doubts the reader raised about the facts behind a criterion; each must name a criterion
    of the referral's pathway (ValueError otherwise: a flag is never dropped unseen). ``red_flags`` is the
    red-flag table (None: the built-in :data:`escape_fhir.domain.red_flags.RED_FLAGS`). ``where`` maps
    referral field paths (``diagnoses[2]``) to where the fact was found (``Bundle.entry[3].resource.code``),
    for the reasons.
    """
    assessed = PATHWAY_CRITERIA[ref.pathway]
    stray = sorted({flag.criterion for flag in flags} - set(assessed))
    if stray:
        raise ValueError(f"review flags for {', '.join(stray)}, not assessed on the {ref.pathway.value} pathway")
    facts = _Facts(ref, RED_FLAGS if red_flags is None else red_flags, where or {})
    criteria = tuple(_flagged(c, flags) for c in RULES[ref.pathway](facts))
    outcomes = {c.outcome for c in criteria}
    if Outcome.NOT_MET in outcomes:
        decision = Decision.NOT_ELIGIBLE
    elif Outcome.UNKNOWN in outcomes:
        decision = Decision.NEEDS_REVIEW
    else:
        decision = Decision.ELIGIBLE
    return EligibilityResult(ref.pathway, decision, criteria)
