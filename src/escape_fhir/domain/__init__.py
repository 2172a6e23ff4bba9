"""The ESCAPE-pain domain: referral model, eligibility rules and STarT Back scoring.

Pure Python with no FHIR and no I/O. Nothing here imports from the rest of the package.
"""

from escape_fhir.domain.criteria import PATHWAY_CRITERIA, ReviewFlag
from escape_fhir.domain.eligibility import Criterion, Decision, EligibilityResult, Outcome, assess
from escape_fhir.domain.red_flags import RED_FLAGS, RedFlag, with_site_flags
from escape_fhir.domain.referral import (
    Address,
    Diagnosis,
    EligibilityAnswers,
    HumanName,
    Organisation,
    Pathway,
    Patient,
    Referral,
    ReferralSource,
    Referrer,
    Registration,
    Site,
    StartBackResult,
    load_referral,
    referral_json_schema,
)
from escape_fhir.domain.startback import (
    ITEM_CODES,
    Risk,
    StartBackAnswers,
    StartBackScore,
    parse_answers,
    score,
    startback_problems,
)

__all__ = [
    "ITEM_CODES",
    "PATHWAY_CRITERIA",
    "RED_FLAGS",
    "Address",
    "Criterion",
    "Decision",
    "Diagnosis",
    "EligibilityAnswers",
    "EligibilityResult",
    "HumanName",
    "Organisation",
    "Outcome",
    "Pathway",
    "Patient",
    "RedFlag",
    "Referral",
    "ReferralSource",
    "Referrer",
    "Registration",
    "ReviewFlag",
    "Risk",
    "Site",
    "StartBackAnswers",
    "StartBackResult",
    "StartBackScore",
    "assess",
    "load_referral",
    "parse_answers",
    "referral_json_schema",
    "score",
    "startback_problems",
    "with_site_flags",
]
