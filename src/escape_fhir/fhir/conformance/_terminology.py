"""The project's CodeSystems and ValueSets.

There is no SNOMED CT, LOINC or BaRS code for ESCAPE-pain itself (nhs-standards.md 9.4-9.5), so the
project defines its own code systems under ``https://w3id.org/escape-fhir/CodeSystem/`` (DESIGN.md,
"Codes"). Their code lists are taken from the domain (enums, criterion table, STarT Back answers), never
retyped, so a code added there without a display and definition here fails loudly. Each has a ValueSet
of all its codes. LOINC, BaRS and FHIR code systems are external: their ValueSets list the codes used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, get_args

from escape_fhir import __version__
from escape_fhir.domain.eligibility import (
    BACK_MIN_AGE,
    CRITERIA,
    KNEE_HIP_MIN_AGE,
    MIN_DURATION_MONTHS,
    Decision,
    Outcome,
)
from escape_fhir.domain.red_flags import RED_FLAGS, RedFlag
from escape_fhir.domain.referral import Pathway, ReferralSource, Referrer, Site
from escape_fhir.domain.startback import AGREE_ANSWERS, BOTHERSOME_ANSWERS
from escape_fhir.fhir import codes
from escape_fhir.fhir._forms import ANSWER_DISPLAY, SITE_DISPLAY
from escape_fhir.fhir.bundles import STATUS_FOR_REASON, MessageReason
from escape_fhir.fhir.conformance._elements import JURISDICTION, PUBLISHER
from escape_fhir.fhir.resources import Json

VS: Final = f"{codes.BASE}/ValueSet"
# FHIR R4 code systems whose codes some of our ValueSets narrow.
REQUEST_STATUS: Final = "http://hl7.org/fhir/request-status"
QR_STATUS: Final = "http://hl7.org/fhir/questionnaire-answers-status"
OBSERVATION_STATUS: Final = "http://hl7.org/fhir/observation-status"


@dataclass(frozen=True)
class Terms:
    """One project code system: its canonical, words, and (code, display, definition) concepts."""

    url: str
    title: str
    description: str
    concepts: tuple[tuple[str, str, str], ...]

    @property
    def id(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def value_set(self) -> str:
        return value_set_of(self.url)


def value_set_of(code_system: str) -> str:
    """The ValueSet of all codes of one of the project's code systems (same id, under ValueSet/)."""
    return f"{VS}/{code_system.rsplit('/', 1)[1]}"


def _concepts(
    code_list: Iterable[str], display: Mapping[str, str], definition: Mapping[str, str]
) -> tuple[tuple[str, str, str], ...]:
    return tuple((code, display[code], definition[code]) for code in code_list)


def _programme() -> Terms:
    definition = {
        "knee-hip": "The six-week group education and exercise programme for people with chronic knee or hip "
        "joint pain (osteoarthritis).",
        "back": "The six-week group education and exercise programme for people with chronic non-specific low "
        "back pain.",
    }
    concepts = _concepts((p.value for p in Pathway), codes.PROGRAMME_DISPLAY, definition)
    return Terms(codes.CS_PROGRAMME, "ESCAPE-pain programme", "The two versions of ESCAPE-pain.", concepts)


def _criterion() -> Terms:
    months = MIN_DURATION_MONTHS
    definition = {
        "age": f"Age on the referral date: {KNEE_HIP_MIN_AGE} or over for knees and hips, {BACK_MIN_AGE} or over "
        "for backs.",
        "site": "An affected site on the programme's pathway: a knee or hip, or the lower back.",
        "duration": f"Symptoms for at least {months} months (knees and hips); for more than {months} months or "
        "in recurrent episodes (backs).",
        "diagnosis": "A clinical diagnosis of knee or hip osteoarthritis, or non-specific low back pain with or "
        "without radicular pain.",
        "red-flags": "No coded diagnosis is a red flag or exclusion of the pathway (ValueSet red-flags and the "
        "site's own list). Codes can show a red flag, never its absence: triage still screens red flags.",
        "supervised-exercise": "Knees and hips: the person needs a supervised exercise programme.",
        "mobility": "The person is independently mobile.",
        "contraindications": "The person has no contraindications to exercise.",
        "group": "Backs: the person can take part in a group exercise programme with minimal supervision.",
        "benefit": "Backs: the person would benefit from a group rehabilitation programme.",
        "startback": "Backs: STarT Back risk medium. A low risk is left for a clinician to review (would the "
        "person benefit, do they wish to take part); a high risk is not met.",
    }
    concepts = _concepts(CRITERIA, CRITERIA, definition)
    description = "The criteria an ESCAPE-pain referral is assessed against, for both programmes."
    return Terms(codes.CS_CRITERION, "ESCAPE-pain eligibility criterion", description, concepts)


def _outcome() -> Terms:
    display = {"met": "Met", "not-met": "Not met", "unknown": "Unknown"}
    definition = {
        "met": "What the referral says shows the criterion is met.",
        "not-met": "What the referral says shows the criterion is not met.",
        "unknown": "The referral does not settle the criterion (not answered, or a clinician must judge).",
    }
    concepts = _concepts((o.value for o in Outcome), display, definition)
    description = "Outcome of one eligibility criterion, with its reason given as text beside it."
    return Terms(codes.CS_CRITERION_OUTCOME, "Eligibility criterion outcome", description, concepts)


def _decision() -> Terms:
    display = {"eligible": "Eligible", "not-eligible": "Not eligible", "needs-review": "Needs review"}
    definition = {
        "eligible": "Every criterion is met.",
        "not-eligible": "At least one criterion is not met.",
        "needs-review": "No criterion is unmet but at least one is unknown: a triage clinician decides.",
    }
    concepts = _concepts((d.value for d in Decision), display, definition)
    description = "The overall eligibility decision for an ESCAPE-pain referral."
    return Terms(codes.CS_DECISION, "Eligibility decision", description, concepts)


def _referral_source() -> Terms:
    display = {
        "gp": "GP",
        "msk-triage": "MSK triage service",
        "physiotherapy": "Physiotherapy provider",
        "orthopaedic-surgeon": "Orthopaedic surgeon",
        "self-referral": "Self-referral",
        "other": "Other",
    }
    definition = {
        "gp": "Referred by a general practice.",
        "msk-triage": "Referred by a musculoskeletal triage or interface service.",
        "physiotherapy": "Referred by a physiotherapy service.",
        "orthopaedic-surgeon": "Referred by an orthopaedic surgeon or their team.",
        "self-referral": "The person referred themselves, for example through the site's own form.",
        "other": "Referred by a service not listed here.",
    }
    concepts = _concepts((s.value for s in ReferralSource), display, definition)
    description = "Who sent an ESCAPE-pain referral; sites decide which routes they accept."
    return Terms(codes.CS_REFERRAL_SOURCE, "ESCAPE-pain referral source", description, concepts)


def _site() -> Terms:
    display = {s.value: text for s, text in SITE_DISPLAY.items()}
    definition = {
        "left-knee": "Pain in the left knee joint.",
        "right-knee": "Pain in the right knee joint.",
        "left-hip": "Pain in the left hip joint.",
        "right-hip": "Pain in the right hip joint.",
        "lower-back": "Pain in the lower back, with or without pain spreading to the legs.",
        "knee": "Pain in a knee joint; the referral does not say which side.",
        "hip": "Pain in a hip joint; the referral does not say which side.",
    }
    concepts = _concepts((s.value for s in Site), display, definition)
    return Terms(codes.CS_SITE, "Affected site", "The joints or region an ESCAPE-pain referral is for.", concepts)


def _referrer_role() -> Terms:
    display = {
        "gp": "General practitioner",
        "physiotherapist": "Physiotherapist",
        "msk-practitioner": "MSK practitioner",
        "orthopaedic-surgeon": "Orthopaedic surgeon",
        "nurse": "Nurse",
        "other": "Other",
    }
    definition = {
        "gp": "A general practitioner.",
        "physiotherapist": "A physiotherapist registered with the HCPC.",
        "msk-practitioner": "A first-contact or advanced musculoskeletal practitioner.",
        "orthopaedic-surgeon": "An orthopaedic surgeon.",
        "nurse": "A nurse, for example a practice nurse.",
        "other": "Another health or care professional.",
    }
    roles = get_args(Referrer.model_fields["role"].annotation)
    concepts = _concepts(roles, display, definition)
    return Terms(codes.CS_REFERRER_ROLE, "Referrer role", "The professional role of a referrer.", concepts)


def _startback_answer() -> Terms:
    weights = {**AGREE_ANSWERS, **BOTHERSOME_ANSWERS}
    meaning = {
        "agree": "Items 1-8: agrees with the statement.",
        "disagree": "Items 1-8: disagrees with the statement.",
        "not-at-all": "Item 9: the back pain has not been bothersome at all.",
        "slightly": "Item 9: the back pain has been slightly bothersome.",
        "moderately": "Item 9: the back pain has been moderately bothersome.",
        "very-much": "Item 9: the back pain has been very bothersome.",
        "extremely": "Item 9: the back pain has been extremely bothersome.",
    }
    # The weight is Keele's scoring ("Using and scoring"; nhs-standards.md 4.2), taken from the domain.
    definition = {code: f"{meaning[code]} Scores {weight}." for code, weight in weights.items()}
    concepts = _concepts(weights, ANSWER_DISPLAY, definition)
    description = (
        "Answers to the STarT Back Screening Tool items (Keele University). LOINC publishes no answer codes "
        "for them (nhs-standards.md 9.2)."
    )
    return Terms(codes.CS_STARTBACK_ANSWER, "STarT Back answer", description, concepts)


def _observation() -> Terms:
    display = {
        "eligibility-assessment": "ESCAPE-pain eligibility assessment",
        "fact-source": "Where a fact of the referral was read",
        "not-understood": "Part of the referral that was not understood",
    }
    definition = {
        "eligibility-assessment": "The eligibility decision for an ESCAPE-pain referral, with each criterion's "
        "outcome and reason as a component.",
        "fact-source": "One fact the adapter read from the sender's message (such as the affected site) and the "
        "FHIRPath location in that message it was read from.",
        "not-understood": "A resource or element of the sender's message that was present but not understood, "
        "so a clinician knows to look at the original message.",
    }
    concepts = _concepts(display, display, definition)
    description = "Observations the project records that no LOINC or SNOMED CT code covers."
    return Terms(codes.CS_OBSERVATION, "ESCAPE-pain observation", description, concepts)


def project_terms() -> list[Terms]:
    """Every code system of the project, in a stable order."""
    builders = (_programme, _criterion, _outcome, _decision, _referral_source, _site, _referrer_role)
    return [build() for build in (*builders, _startback_answer, _observation)]


def _metadata(resource_type: str, resource_id: str, url: str, title: str, description: str) -> Json:
    name = "".join(part.capitalize() for part in resource_id.split("-"))
    return {
        "resourceType": resource_type,
        "id": resource_id,
        "url": url,
        "version": __version__,
        "name": name,
        "title": title,
        "status": "active",
        "publisher": PUBLISHER,
        "description": description,
        "jurisdiction": JURISDICTION,
    }


def code_system(terms: Terms) -> Json:
    return _metadata("CodeSystem", terms.id, terms.url, terms.title, terms.description) | {
        "caseSensitive": True,
        "valueSet": terms.value_set,
        "content": "complete",
        "count": len(terms.concepts),
        "concept": [{"code": c, "display": d, "definition": text} for c, d, text in terms.concepts],
    }


def whole_system_value_set(terms: Terms) -> Json:
    description = f"All codes of the {terms.title} code system."
    return _metadata("ValueSet", terms.id, terms.value_set, terms.title, description) | {
        "compose": {"include": [{"system": terms.url}]}
    }


def listed_value_set(
    vs_id: str, title: str, description: str, system: str, concepts: Iterable[tuple[str, str | None]]
) -> Json:
    """A ValueSet of listed codes of an external code system (LOINC, BaRS, FHIR)."""
    listed = [{"code": c, **({"display": d} if d else {})} for c, d in concepts]
    return _metadata("ValueSet", vs_id, f"{VS}/{vs_id}", title, description) | {
        "compose": {"include": [{"system": system, "concept": listed}]}
    }


# --- ValueSets over external code systems ------------------------------------------------------------------

VS_STARTBACK_SCORE: Final = f"{VS}/startback-score"
VS_STARTBACK_RISK: Final = f"{VS}/startback-risk-level"
VS_MESSAGE_REASON: Final = f"{VS}/bars-message-reason"
VS_REFERRAL_STATUS: Final = f"{VS}/referral-status"
VS_RESPONSE_STATUS: Final = f"{VS}/final-response-status"
VS_OBSERVATION_STATUS: Final = f"{VS}/final-observation-status"
VS_RED_FLAGS: Final = f"{VS}/red-flags"
#: FHIR R4 core extensions on ValueSet.compose.include.concept: what a code means here, and a comment (the
#: source of the rule and the pathways it applies to).
EXT_CONCEPT_DEFINITION: Final = "http://hl7.org/fhir/StructureDefinition/valueset-concept-definition"
EXT_CONCEPT_COMMENTS: Final = "http://hl7.org/fhir/StructureDefinition/valueset-concept-comments"


def red_flag_value_set() -> Json:
    """The built-in red flags and exclusions (escape_fhir.domain.red_flags.RED_FLAGS), one SNOMED CT concept
    each with its meaning and source. Descendants are not included: without a terminology server they cannot
    be computed, so the common ones are listed and a site adds more (ESCAPE_FHIR_RED_FLAGS)."""
    description = (
        "SNOMED CT concepts that exclude a referral from ESCAPE-pain: serious spinal pathology and specific "
        "causes of back pain (NICE NG59), alternative diagnoses to osteoarthritis of the knee or hip (NICE "
        "NG226). Only the listed concepts match: descendants are not computed (no terminology server), so "
        "common descendants are listed and each site may add codes of its own."
    )
    concepts = [
        {
            "extension": [
                {"url": EXT_CONCEPT_DEFINITION, "valueString": flag.meaning},
                {"url": EXT_CONCEPT_COMMENTS, "valueString": f"Source: {flag.source}. Pathways: {_pathways(flag)}."},
            ],
            "code": flag.code,
            "display": flag.display,
        }
        for flag in RED_FLAGS.values()
    ]
    vs = _metadata("ValueSet", "red-flags", VS_RED_FLAGS, "Red flags and exclusions", description)
    return vs | {"compose": {"include": [{"system": codes.SNOMED, "concept": concepts}]}}


def _pathways(flag: RedFlag) -> str:
    return " and ".join(codes.PROGRAMME_DISPLAY[p.value] for p in Pathway if p in flag.pathways)


def external_value_sets() -> list[Json]:
    scores = (codes.STARTBACK_TOTAL, codes.STARTBACK_SUBSCORE, codes.STARTBACK_RISK)
    statuses = dict.fromkeys([*STATUS_FOR_REASON.values(), "entered-in-error"])
    rows: list[tuple[str, str, str, str, Iterable[tuple[str, str | None]]]] = [
        (
            "startback-score",
            "STarT Back score",
            "The LOINC codes of the three STarT Back results: total score, psychosocial (distress) subscore and "
            "risk level.",
            codes.LOINC,
            scores,
        ),
        (
            "startback-risk-level",
            "STarT Back risk level",
            "LOINC answers for the STarT Back risk level (answer list LL3578-3).",
            codes.LOINC,
            codes.STARTBACK_RISK_ANSWERS.values(),
        ),
        (
            "bars-message-reason",
            "BaRS message reason",
            "Why a BaRS referral message is sent: a new referral, an update, or a cancellation (nhs-standards.md 1.4).",
            codes.CS_MESSAGE_REASON_BARS,
            ((r.value, None) for r in MessageReason),
        ),
        (
            "referral-status",
            "Referral status",
            "ServiceRequest statuses a BaRS referral uses: active when sent, revoked when cancelled, "
            "entered-in-error when sent to the wrong place (nhs-standards.md 1.5).",
            REQUEST_STATUS,
            ((s, None) for s in statuses),
        ),
        (
            "final-response-status",
            "Final response status",
            "A QuestionnaireResponse that can be validated against its Questionnaire: completed, or amended "
            "after completion (SDC validation, nhs-standards.md 7.4).",
            QR_STATUS,
            (("completed", None), ("amended", None)),
        ),
        (
            "final-observation-status",
            "Final observation status",
            "An Observation whose value can be relied on: final, or changed after it was final.",
            OBSERVATION_STATUS,
            (("final", None), ("amended", None), ("corrected", None)),
        ),
    ]
    return [*(listed_value_set(*row) for row in rows), red_flag_value_set()]


def terminology_resources() -> list[Json]:
    """Every project CodeSystem, its whole-system ValueSet, then the ValueSets over external systems."""
    terms = project_terms()
    return [code_system(t) for t in terms] + [whole_system_value_set(t) for t in terms] + external_value_sets()
