"""STarT Back Screening Tool scoring (Keele University).

Rules (nhs-standards.md section 4.2; Keele "Using and scoring"; LOINC 91350-9, 91351-7, 91352-5):

* items 1-8 score 1 for "agree", 0 for "disagree";
* item 9 (bothersomeness) scores 1 for "very-much" or "extremely", 0 otherwise;
* total (91351-7) = sum of items 1-9, 0..9;
* psychosocial (distress) subscore (91350-9) = sum of items 5-9, 0..5;
* risk (91352-5): total <= 3 -> low; total >= 4 and subscore <= 3 -> medium; subscore >= 4 -> high.

STarT Back: Copyright (c) University of Keele. No licence is required for non-commercial use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from escape_fhir.errors import FieldError, ScoringInputError

#: LOINC codes of the nine items, in questionnaire order (item 1 first).
ITEM_CODES: tuple[str, ...] = (
    "91340-0",
    "91341-8",
    "91342-6",
    "91343-4",
    "91344-2",
    "91345-9",
    "91346-7",
    "91347-5",
    "91348-3",
)

#: Items 5-9 form the psychosocial subscore.
PSYCHOSOCIAL_CODES: tuple[str, ...] = ITEM_CODES[4:]

AGREE_ANSWERS: Mapping[str, int] = {"agree": 1, "disagree": 0}
BOTHERSOME_ANSWERS: Mapping[str, int] = {
    "not-at-all": 0,
    "slightly": 0,
    "moderately": 0,
    "very-much": 1,
    "extremely": 1,
}


def answer_weights(code: str) -> Mapping[str, int]:
    """The allowed answers of one item and the weight of each."""
    return BOTHERSOME_ANSWERS if code == ITEM_CODES[8] else AGREE_ANSWERS


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


#: Answers keyed by LOINC item code, e.g. ``{"91340-0": "agree", ..., "91348-3": "slightly"}``.
StartBackAnswers = dict[str, str]


@dataclass(frozen=True)
class StartBackScore:
    total: int
    psychosocial: int
    risk: Risk

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "psychosocial": self.psychosocial, "risk": self.risk.value}


def parse_answers(raw: object) -> StartBackAnswers:
    """Check a mapping of item code -> answer; every problem is reported at once."""
    if not isinstance(raw, Mapping):
        raise ScoringInputError([FieldError("", "expected a JSON object mapping LOINC item codes to answers")])
    errors: list[FieldError] = []
    for code in ITEM_CODES:
        if code not in raw:
            errors.append(FieldError(code, "missing answer"))
            continue
        value = raw[code]
        allowed = answer_weights(code)
        if not isinstance(value, str) or value not in allowed:
            errors.append(FieldError(code, f"unknown answer {value!r}; expected one of {', '.join(allowed)}"))
    errors.extend(FieldError(str(k), "not a STarT Back item code") for k in raw if k not in ITEM_CODES)
    if errors:
        raise ScoringInputError(errors)
    return {code: str(raw[code]) for code in ITEM_CODES}


def risk_for(total: int, psychosocial: int) -> Risk:
    if total <= 3:
        return Risk.LOW
    return Risk.HIGH if psychosocial >= 4 else Risk.MEDIUM


#: Each risk by its value (``Risk(value)`` and ``.value`` go through the Enum machinery, in Python).
RISK_OF_VALUE = {r.value: r for r in Risk}
MAX_TOTAL = len(ITEM_CODES)
MAX_PSYCHOSOCIAL = len(PSYCHOSOCIAL_CODES)


def _possible_risks(total: int | None, psychosocial: int | None) -> set[Risk]:
    """The risks Keele's rule allows for what is known of the scores (either may be missing)."""
    totals = range(MAX_TOTAL + 1) if total is None else (total,)
    subscores = range(MAX_PSYCHOSOCIAL + 1) if psychosocial is None else (psychosocial,)
    return {risk_for(t, p) for t in totals for p in subscores if p <= t}


def startback_field_problems(total: object, psychosocial: object, risk: object) -> list[tuple[str, str]]:
    """What is wrong with a STarT Back result, as (field, message) pairs; empty when it is consistent.

    Checks (nhs-standards.md 4.2): total 0-9, psychosocial subscore 0-5, the subscore (items 5-9) no more
    than the total (items 1-9), and a risk that follows from the scores by Keele's rule. With one score
    missing, the risk must still be one the known score allows (total 2 is always low; subscore 4 always
    high). Values of the wrong type are reported rather than raised, since they come from a sender.
    """
    problems: list[tuple[str, str]] = []
    scores: dict[str, int | None] = {}
    for name, value, top in (("total", total, MAX_TOTAL), ("psychosocial", psychosocial, MAX_PSYCHOSOCIAL)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top):
            problems.append((name, f"{value!r} is not a score from 0 to {top}"))
            value = None
        scores[name] = value if isinstance(value, int) else None
    known_total, known_sub = scores["total"], scores["psychosocial"]
    if known_total is not None and known_sub is not None and known_sub > known_total:
        problems.append(("psychosocial", f"subscore {known_sub} is more than the total {known_total}"))
        return problems
    if risk not in RISK_OF_VALUE:
        return [*problems, ("risk", f"{risk!r} is not a STarT Back risk (low, medium or high)")]
    allowed = _possible_risks(known_total, known_sub)
    if RISK_OF_VALUE[str(risk)] not in allowed:
        figures = " and ".join(
            f"{name} {value}"
            for name, value in (("total", known_total), ("psychosocial subscore", known_sub))
            if value is not None
        )
        expected = " or ".join(sorted(r.value for r in allowed))
        problems.append(("risk", f"{risk} does not follow from {figures}: Keele's rule gives {expected}"))
    return problems


def startback_problems(total: object, psychosocial: object, risk: object) -> list[str]:
    """The problems of a received STarT Back result in plain words (empty when consistent).

    The FHIR reader calls this on a result read from a sender's Observations: a contradiction there makes
    the STarT Back criterion ``unknown`` with these words, where the referral input format refuses it.
    """
    return [f"STarT Back {field}: {message}" for field, message in startback_field_problems(total, psychosocial, risk)]


def score(answers: Mapping[str, str]) -> StartBackScore:
    """Score a complete set of answers (use :func:`parse_answers` first on untrusted input)."""
    checked = parse_answers(answers)
    weights = {code: answer_weights(code)[checked[code]] for code in ITEM_CODES}
    total = sum(weights.values())
    psychosocial = sum(weights[c] for c in PSYCHOSOCIAL_CODES)
    return StartBackScore(total=total, psychosocial=psychosocial, risk=risk_for(total, psychosocial))
