"""The vocabulary of an eligibility assessment: criteria, outcomes, decisions and review flags.

The rules themselves are in :mod:`escape_fhir.domain.eligibility`; these types are apart so that the rules
and whoever raises a review flag (the FHIR reader) share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from escape_fhir.domain.referral import Pathway


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


class Decision(StrEnum):
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not-eligible"
    NEEDS_REVIEW = "needs-review"


#: Title of every criterion, by code. The codes are the project's CodeSystem eligibility-criterion.
CRITERIA: dict[str, str] = {
    "age": "Age",
    "site": "Affected site",
    "duration": "Symptom duration",
    "diagnosis": "Diagnosis",
    "red-flags": "No red flags or exclusions",
    "supervised-exercise": "Needs a supervised exercise programme",
    "mobility": "Independently mobile",
    "contraindications": "No contraindications to exercise",
    "group": "Able to join a group with minimal supervision",
    "benefit": "Would benefit from a group rehabilitation programme",
    "startback": "STarT Back risk",
}

#: The criteria each pathway is assessed on, in the order they are reported.
PATHWAY_CRITERIA: dict[Pathway, tuple[str, ...]] = {
    Pathway.KNEE_HIP: (
        "age",
        "site",
        "duration",
        "diagnosis",
        "red-flags",
        "supervised-exercise",
        "mobility",
        "contraindications",
    ),
    Pathway.BACK: (
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
    ),
}


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


@dataclass(frozen=True)
class ReviewFlag:
    """A doubt about the facts behind one criterion, raised by whoever read the referral.

    The FHIR reader raises one when a fact was found but cannot be trusted as read (a STarT Back result
    that contradicts itself, a response not ``completed``, two places that disagree). A flagged criterion is
    never ``met`` (:func:`escape_fhir.domain.eligibility.assess`).
    """

    criterion: str  # a code of CRITERIA
    reason: str  # plain words for a clinician, naming where (FHIR location) the problem is

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise ValueError(f"review flag for {self.criterion!r}, which is not an eligibility criterion")
        if not self.reason.strip():
            raise ValueError(f"review flag for {self.criterion!r} without a reason")
