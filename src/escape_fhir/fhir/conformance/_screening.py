"""Profiles of what supports a referral: the eligibility and STarT Back QuestionnaireResponses, the STarT Back
score Observations and the eligibility assessment Observation (UK Core bases, nhs-standards.md 2.1).

The invariants state rules of the domain (eligibility.py, startback.py), so a receiver can trust a
decision or a score without recomputing it; their bounds and codes come from the domain and codes.py.
"""

from __future__ import annotations

from typing import Final

from escape_fhir.domain.eligibility import Decision, Outcome
from escape_fhir.domain.startback import ITEM_CODES, PSYCHOSOCIAL_CODES
from escape_fhir.fhir import codes
from escape_fhir.fhir.conformance._elements import (
    binding,
    canonical_is,
    coded,
    element,
    invariant,
    profile,
    reference,
    slicing,
)
from escape_fhir.fhir.conformance._terminology import (
    VS_OBSERVATION_STATUS,
    VS_RESPONSE_STATUS,
    VS_STARTBACK_RISK,
    VS_STARTBACK_SCORE,
    value_set_of,
)
from escape_fhir.fhir.resources import Json

VS_DECISION: Final = value_set_of(codes.CS_DECISION)
VS_CRITERION: Final = value_set_of(codes.CS_CRITERION)
VS_OUTCOME: Final = value_set_of(codes.CS_CRITERION_OUTCOME)
UKCORE_QR: Final = f"{codes.UKCORE}/UKCore-QuestionnaireResponse"
UKCORE_OBSERVATION: Final = f"{codes.UKCORE}/UKCore-Observation"


def _response(sd_id: str, title: str, description: str, questionnaires: tuple[str, ...], key: str) -> Json:
    qr = "QuestionnaireResponse"
    url = f"{codes.SD}/{sd_id}"
    names = " or ".join(q.rsplit("/", 1)[1] for q in questionnaires)
    rule = invariant(
        key,
        f"The response answers the {names} Questionnaire of escape-fhir",
        canonical_is("questionnaire", *questionnaires),
        url,
    )
    elements = [
        element(qr, short=title, constraint=[rule]),
        element(f"{qr}.questionnaire", min=1),
        # SDC: a response is checked against its Questionnaire once completed or amended (nhs-standards 7.4).
        element(f"{qr}.status", binding=binding(VS_RESPONSE_STATUS)),
        element(f"{qr}.subject", min=1, type=reference("Patient")),
        element(f"{qr}.authored", min=1),
        element(f"{qr}.item", min=1),
    ]
    return profile(sd_id, qr, UKCORE_QR, title, description, elements)


def eligibility_response() -> Json:
    return _response(
        "EscapePainEligibilityResponse",
        "ESCAPE-pain eligibility response",
        "The referrer's answers to the knee/hip or the back eligibility Questionnaire of escape-fhir.",
        (codes.Q_KNEE_HIP, codes.Q_BACK),
        "esc-qr-1",
    )


def startback_response() -> Json:
    return _response(
        "StartBackResponse",
        "STarT Back response",
        "The answers to the STarT Back Screening Tool (Keele University) with its calculated total, "
        "psychosocial subscore and risk level.",
        (codes.Q_STARTBACK,),
        "esc-qr-2",
    )


def _score_invariants(url: str) -> list[Json]:
    # Each item scores 0 or 1 (Keele "Using and scoring", nhs-standards.md 4.2): the total is 0..9 and the
    # psychosocial subscore 0..5; the risk level is coded (its codes are bound on value[x]).
    rules = []
    for key, name, (code, _), top in (
        ("esc-sb-1", "total score", codes.STARTBACK_TOTAL, len(ITEM_CODES)),
        ("esc-sb-2", "psychosocial subscore", codes.STARTBACK_SUBSCORE, len(PSYCHOSOCIAL_CODES)),
    ):
        in_range = f"value.ofType(integer).where($this >= 0 and $this <= {top}).exists()"
        human = f"A {name} ({code}) is an integer from 0 to {top}"
        rules.append(invariant(key, human, f"code.{coded(codes.LOINC, code)} implies {in_range}", url))
    risk = codes.STARTBACK_RISK[0]
    expression = f"code.{coded(codes.LOINC, risk)} implies value.ofType(CodeableConcept).exists()"
    rules.append(invariant("esc-sb-3", f"A risk level ({risk}) is a coded value", expression, url))
    return rules


def _observation_basics(obs: str) -> list[Json]:
    return [
        element(f"{obs}.status", binding=binding(VS_OBSERVATION_STATUS)),
        element(f"{obs}.subject", min=1, type=reference("Patient")),
        element(f"{obs}.effective[x]", min=1, type=[{"code": "dateTime"}]),
    ]


def startback_score() -> Json:
    obs = "Observation"
    url = codes.PROFILE_STARTBACK_SCORE
    survey = {"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "survey"}]}
    status, subject, effective = _observation_basics(obs)
    elements = [
        element(obs, short="A STarT Back result", constraint=_score_invariants(url)),
        status,
        element(
            f"{obs}.category", min=1, slicing=slicing("pattern", "$this", "Categories are told apart by their coding.")
        ),
        element(f"{obs}.category:survey", min=1, max="1", patternCodeableConcept=survey),
        element(f"{obs}.code", binding=binding(VS_STARTBACK_SCORE)),
        subject,
        effective,
        element(
            f"{obs}.value[x]",
            min=1,
            type=[{"code": "integer"}, {"code": "CodeableConcept"}],
            binding=binding(VS_STARTBACK_RISK, description="The risk level; scores are integers."),
        ),
        element(
            f"{obs}.derivedFrom",
            type=reference(codes.PROFILE_STARTBACK_RESPONSE),
            short="The STarT Back response scored, when its answers are known",
        ),
    ]
    return profile(
        "StartBackScore",
        obs,
        UKCORE_OBSERVATION,
        "STarT Back score",
        "One STarT Back result (LOINC 91351-7 total, 91350-9 psychosocial subscore or 91352-5 risk level) as "
        "the SDC observation extract of the STarT Back response would give it.",
        elements,
    )


def _assessment_invariants(url: str) -> list[Json]:
    # The decision rule of eligibility.assess: any criterion not met -> not-eligible; otherwise any unknown ->
    # needs-review; otherwise eligible. Stated here so a receiver can rely on the decision as sent.
    def is_decision(value: Decision) -> str:
        return f"value.ofType(CodeableConcept).{coded(codes.CS_DECISION, value.value)}"

    def some_outcome(value: Outcome) -> str:
        return f"component.value.ofType(CodeableConcept).{coded(codes.CS_CRITERION_OUTCOME, value.value)}"

    every_met = f"component.all(value.ofType(CodeableConcept).{coded(codes.CS_CRITERION_OUTCOME, Outcome.MET.value)})"
    criteria = f"component.code.coding.where(system = '{codes.CS_CRITERION}').code"
    return [
        invariant(
            "esc-elig-1",
            "The decision is not-eligible exactly when some criterion is not met",
            f"{is_decision(Decision.NOT_ELIGIBLE)} = {some_outcome(Outcome.NOT_MET)}",
            url,
        ),
        invariant(
            "esc-elig-2",
            "The decision is eligible only when every criterion is met",
            f"{is_decision(Decision.ELIGIBLE)} implies {every_met}",
            url,
        ),
        invariant(
            "esc-elig-3",
            "The decision is needs-review only when some criterion is unknown",
            f"{is_decision(Decision.NEEDS_REVIEW)} implies {some_outcome(Outcome.UNKNOWN)}",
            url,
        ),
        invariant("esc-elig-4", "Each criterion is reported once", f"{criteria}.isDistinct()", url),
    ]


def eligibility_assessment() -> Json:
    obs = "Observation"
    url = codes.PROFILE_ELIGIBILITY_ASSESSMENT
    reason = invariant(
        "esc-elig-5",
        "Each criterion's outcome carries its reason as text",
        "value.ofType(CodeableConcept).text.exists()",
        url,
    )
    assessment = {"coding": [{"system": codes.CS_OBSERVATION, "code": "eligibility-assessment"}]}
    status, subject, effective = _observation_basics(obs)
    elements = [
        element(obs, short="An ESCAPE-pain eligibility assessment", constraint=_assessment_invariants(url)),
        status,
        element(f"{obs}.code", patternCodeableConcept=assessment),
        subject,
        effective,
        element(f"{obs}.value[x]", min=1, type=[{"code": "CodeableConcept"}], binding=binding(VS_DECISION)),
        element(f"{obs}.derivedFrom", min=1, short="The eligibility response, and the STarT Back risk if any"),
        element(f"{obs}.component", min=1, short="One criterion, its outcome and reason", constraint=[reason]),
        element(f"{obs}.component.code", binding=binding(VS_CRITERION)),
        element(f"{obs}.component.value[x]", min=1, type=[{"code": "CodeableConcept"}], binding=binding(VS_OUTCOME)),
    ]
    return profile(
        "EscapePainEligibilityAssessment",
        obs,
        UKCORE_OBSERVATION,
        "ESCAPE-pain eligibility assessment",
        "The eligibility decision for an ESCAPE-pain referral (eligible, not eligible, needs review) with one "
        "component per criterion giving its outcome (met, not met, unknown) and the reason in words.",
        elements,
    )


def screening_profiles() -> list[Json]:
    return [eligibility_response(), startback_response(), startback_score(), eligibility_assessment()]
