"""The definitions of the three ESCAPE-pain Questionnaires (FHIR R4): the source of truth.

Public use goes through :mod:`escape_fhir.fhir.questionnaires`; building and reading responses use the
same :class:`Form` objects so that linkIds, texts and answer codings cannot drift apart.

* knee/hip and back eligibility: one boolean item per :class:`~escape_fhir.domain.EligibilityAnswers`
  field that applies to the pathway, plus affected sites and symptom duration.
* STarT Back (LOINC panel 91349-1, nhs-standards.md 4): nine LOINC-coded items whose answer options carry
  SDC ``itemWeight``, and three read-only score items with SDC ``calculatedExpression``.

STarT Back: Copyright (c) University of Keele (see ``codes.KEELE_COPYRIGHT``); the item texts here are the
project's own short summaries of each item's subject, not Keele's item wording.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from escape_fhir.domain.referral import Pathway, Site
from escape_fhir.domain.startback import ITEM_CODES, PSYCHOSOCIAL_CODES, answer_weights
from escape_fhir.fhir import codes

VERSION: Final = "1.0.0"
PUBLISHER: Final = "escape-fhir"
Q_PROFILE: Final = f"{codes.UKCORE}/UKCore-Questionnaire"
QR_PROFILE: Final = f"{codes.UKCORE}/UKCore-QuestionnaireResponse"

# Extensions. itemWeight replaced the R4 core ordinalValue extension; SDC puts it on answerOption
# "where possible" (nhs-standards.md 7.1, FHIR Extensions Pack itemWeight).
EXT_ITEM_WEIGHT: Final = "http://hl7.org/fhir/StructureDefinition/itemWeight"
EXT_MIN_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_VARIABLE: Final = "http://hl7.org/fhir/StructureDefinition/variable"
_SDC: Final = "http://hl7.org/fhir/uv/sdc/StructureDefinition"
EXT_CALCULATED_EXPRESSION: Final = f"{_SDC}/sdc-questionnaire-calculatedExpression"
EXT_OBSERVATION_EXTRACT: Final = f"{_SDC}/sdc-questionnaire-observationExtract"


@dataclass(frozen=True)
class Option:
    """One answerOption coding; ``weight`` becomes the itemWeight extension."""

    system: str
    code: str
    display: str
    weight: int | None = None

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class Question:
    """One Questionnaire item (every item of the three forms is a question: no groups)."""

    link_id: str
    text: str
    type: str  # FHIR item type: boolean, integer or choice
    options: tuple[Option, ...] = ()
    repeats: bool = False
    code: tuple[str, str | None] | None = None  # LOINC (code, display)
    bounds: tuple[int, int] | None = None  # inclusive min and max of an integer answer
    calculated: str | None = None  # FHIRPath: makes the item read-only and calculated (SDC 7.1)

    def to_fhir(self) -> dict[str, Any]:
        item: dict[str, Any] = {}
        extensions = self._extensions()
        if extensions:
            item["extension"] = extensions
        item["linkId"] = self.link_id
        if self.code is not None:
            item["code"] = [_loinc(*self.code)]
        item["text"] = self.text
        item["type"] = self.type
        if self.repeats:
            item["repeats"] = True
        if self.calculated is not None:
            item["readOnly"] = True
        if self.options:
            item["answerOption"] = [_answer_option(o) for o in self.options]
        return item

    def _extensions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.bounds is not None:
            out.append({"url": EXT_MIN_VALUE, "valueInteger": self.bounds[0]})
            out.append({"url": EXT_MAX_VALUE, "valueInteger": self.bounds[1]})
        if self.calculated is not None:
            expression = {"language": "text/fhirpath", "expression": self.calculated}
            out.append({"url": EXT_CALCULATED_EXPRESSION, "valueExpression": expression})
            # Observation-based $extract (SDC 7.3): the score becomes an Observation coded with item.code.
            out.append({"url": EXT_OBSERVATION_EXTRACT, "valueBoolean": True})
        return out


def _loinc(code: str, display: str | None) -> dict[str, str]:
    coding = {"system": codes.LOINC, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _answer_option(option: Option) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if option.weight is not None:
        out["extension"] = [{"url": EXT_ITEM_WEIGHT, "valueDecimal": option.weight}]
    out["valueCoding"] = option.coding()
    return out


@dataclass(frozen=True)
class Form:
    """One Questionnaire: its identity and its questions, in order."""

    id: str
    url: str
    name: str
    title: str
    description: str
    questions: tuple[Question, ...]
    code: tuple[str, str] | None = None
    copyright: str | None = None
    variables: tuple[tuple[str, str], ...] = ()  # SDC root variables: (name, FHIRPath)

    @cached_property
    def _by_link(self) -> dict[str, Question]:
        return {q.link_id: q for q in self.questions}

    def question(self, link_id: str) -> Question | None:
        return self._by_link.get(link_id)

    def to_fhir(self) -> dict[str, Any]:
        q: dict[str, Any] = {"resourceType": "Questionnaire", "id": self.id, "meta": {"profile": [Q_PROFILE]}}
        if self.variables:
            q["extension"] = [_variable(name, expr) for name, expr in self.variables]
        q |= {"url": self.url, "version": VERSION, "name": self.name, "title": self.title, "status": "active"}
        q |= {"subjectType": ["Patient"], "publisher": PUBLISHER, "description": self.description}
        if self.copyright is not None:
            q["copyright"] = self.copyright
        if self.code is not None:
            q["code"] = [_loinc(*self.code)]
        q["item"] = [question.to_fhir() for question in self.questions]
        return q


def _variable(name: str, expression: str) -> dict[str, Any]:
    return {
        "url": EXT_VARIABLE,
        "valueExpression": {"name": name, "language": "text/fhirpath", "expression": expression},
    }


# --- eligibility forms ---------------------------------------------------------------------------------

SITE_DISPLAY: Final[Mapping[Site, str]] = {
    Site.LEFT_KNEE: "Left knee",
    Site.RIGHT_KNEE: "Right knee",
    Site.LEFT_HIP: "Left hip",
    Site.RIGHT_HIP: "Right hip",
    Site.LOWER_BACK: "Lower back",
    Site.KNEE: "Knee (side not stated)",
    Site.HIP: "Hip (side not stated)",
}

#: The question asked for each EligibilityAnswers field; the linkId is the field name in kebab-case.
ELIGIBILITY_TEXT: Final[Mapping[str, str]] = {
    "independently_mobile": "Is the person independently mobile?",
    "contraindications_to_exercise": "Does the person have any contraindications to exercise?",
    "clinical_diagnosis_of_osteoarthritis": "Is there a clinical diagnosis of knee or hip osteoarthritis?",
    "needs_supervised_exercise": "Does the person need a supervised exercise programme?",
    "non_specific_low_back_pain": "Is the low back pain non-specific?",
    "recurrent_episodes": "Has the person had recurrent episodes of low back pain?",
    "radicular_pain": "Does the person have radicular (sciatic) leg pain?",
    "able_to_join_group": "Can the person join a group exercise programme with minimal supervision?",
    "would_benefit_from_group": "Would the person benefit from a group rehabilitation programme?",
    "wishes_to_take_part": "Does the person wish to take part in the programme?",
}

#: EligibilityAnswers fields asked on each pathway, in form order (the other pathway's fields left out).
PATHWAY_FIELDS: Final[Mapping[Pathway, tuple[str, ...]]] = {
    Pathway.KNEE_HIP: (
        "clinical_diagnosis_of_osteoarthritis",
        "needs_supervised_exercise",
        "independently_mobile",
        "contraindications_to_exercise",
    ),
    Pathway.BACK: (
        "recurrent_episodes",
        "radicular_pain",
        "non_specific_low_back_pain",
        "independently_mobile",
        "contraindications_to_exercise",
        "able_to_join_group",
        "would_benefit_from_group",
        "wishes_to_take_part",
    ),
}

PROGRAMME_TITLE: Final[Mapping[Pathway, str]] = {
    Pathway.KNEE_HIP: "ESCAPE-pain for knees and hips",
    Pathway.BACK: "ESCAPE-pain for backs",
}
LINK_SITES: Final = "affected-sites"
LINK_DURATION: Final = "symptom-duration-months"
LINK_ONSET: Final = "symptom-onset-date"


def link_id(field: str) -> str:
    """The stable linkId of an EligibilityAnswers field: its name in kebab-case."""
    return field.replace("_", "-")


def _site_question(sites: Sequence[Site], text: str) -> Question:
    options = tuple(Option(codes.CS_SITE, s.value, SITE_DISPLAY[s]) for s in sites)
    return Question(LINK_SITES, text, "choice", options, repeats=len(sites) > 1)


def _eligibility_form(pathway: Pathway, sites: Sequence[Site], site_text: str) -> Form:
    duration = Question(
        LINK_DURATION, "How many months has the person had these symptoms?", "integer", bounds=(0, 1200)
    )
    # The day the symptoms began, when known: it settles the duration where whole months cannot (issue 9).
    onset = Question(LINK_ONSET, "When did these symptoms begin, if the date is known?", "date")
    booleans = tuple(Question(link_id(f), ELIGIBILITY_TEXT[f], "boolean") for f in PATHWAY_FIELDS[pathway])
    title = PROGRAMME_TITLE[pathway]
    return Form(
        id=f"{pathway.value}-eligibility",
        url=codes.Q_KNEE_HIP if pathway is Pathway.KNEE_HIP else codes.Q_BACK,
        name="KneeHipEligibility" if pathway is Pathway.KNEE_HIP else "BackEligibility",
        title=f"{title}: eligibility",
        description=f"The questions a referrer answers to show whether a person meets the criteria of {title}.",
        questions=(_site_question(sites, site_text), duration, onset, *booleans),
    )


KNEE_HIP_FORM: Final = _eligibility_form(
    Pathway.KNEE_HIP,
    (Site.LEFT_KNEE, Site.RIGHT_KNEE, Site.LEFT_HIP, Site.RIGHT_HIP, Site.KNEE, Site.HIP),
    "Which knees or hips are affected?",
)
BACK_FORM: Final = _eligibility_form(Pathway.BACK, (Site.LOWER_BACK,), "Affected site")
ELIGIBILITY_FORMS: Final[Mapping[Pathway, Form]] = {Pathway.KNEE_HIP: KNEE_HIP_FORM, Pathway.BACK: BACK_FORM}


# --- STarT Back ----------------------------------------------------------------------------------------

#: Short neutral summaries of each item's subject (the project's words; Keele's wording is copyrighted).
STARTBACK_TEXT: Final[Mapping[str, str]] = dict(
    zip(
        ITEM_CODES,
        (
            "Back pain spread down the leg(s) in the last 2 weeks",
            "Shoulder or neck pain in the last 2 weeks",
            "Walked only short distances because of back pain",
            "Dressed more slowly than usual because of back pain in the last 2 weeks",
            "Feels it is not really safe to be physically active",
            "Worrying thoughts much of the time",
            "Feels the back pain is terrible and will not get better",
            "Not enjoying the things once enjoyed",
            "Overall bothersomeness of back pain in the last 2 weeks",
        ),
        strict=True,
    )
)
ANSWER_DISPLAY: Final[Mapping[str, str]] = {
    "agree": "Agree",
    "disagree": "Disagree",
    "not-at-all": "Not at all",
    "slightly": "Slightly",
    "moderately": "Moderately",
    "very-much": "Very much",
    "extremely": "Extremely",
}
RISK_CODES: Final = codes.STARTBACK_RISK_ANSWERS

# fhirpathpy 2.2.4 does not implement SDC's weight() (nor STU3 ordinal()): it raises "Not implemented".
# Every STarT Back weight is 0 or 1 (Keele "Using and scoring"), so the weighted sum equals the number of
# answers coded with a weight-1 code of our answer CodeSystem; the expressions count those, and the scoring
# codes are taken from the domain weights so the two cannot drift apart.
_SCORING_CODES: Final = tuple(
    dict.fromkeys(a for item in ITEM_CODES for a, w in answer_weights(item).items() if w == 1)
)


def _quoted(values: Sequence[str]) -> str:
    return "(" + " | ".join(f"'{v}'" for v in values) + ")"


def _count_scoring(items: Sequence[str]) -> str:
    return (
        f"%resource.repeat(item).where(linkId in {_quoted(items)}).answer.value"
        f".where(system = '{codes.CS_STARTBACK_ANSWER}' and code in {_quoted(_SCORING_CODES)}).count()"
    )


# Risk (nhs-standards.md 4.2; LOINC 91352-5): total <= 3 low; else subscore >= 4 high; else medium.
# FHIRPath cannot construct a Coding, so the expression picks the matching answerOption of the item.
_RISK_EXPRESSION: Final = (
    f"%questionnaire.repeat(item).where(linkId = '{codes.STARTBACK_RISK[0]}').answerOption.value"
    f".where(code = iif(%total <= 3, '{RISK_CODES['low'][0]}', "
    f"iif(%psychosocial >= 4, '{RISK_CODES['high'][0]}', '{RISK_CODES['medium'][0]}')))"
)


def _startback_item(code: str) -> Question:
    options = tuple(
        Option(codes.CS_STARTBACK_ANSWER, answer, ANSWER_DISPLAY[answer], weight)
        for answer, weight in answer_weights(code).items()
    )
    # No display on the LOINC item codes: LOINC's displays are Keele's item wording (nhs-standards.md 4.1).
    return Question(code, STARTBACK_TEXT[code], "choice", options, code=(code, None))


def _startback_form() -> Form:
    total, sub, risk = codes.STARTBACK_TOTAL, codes.STARTBACK_SUBSCORE, codes.STARTBACK_RISK
    risk_options = tuple(Option(codes.LOINC, c, d) for c, d in RISK_CODES.values())
    scores = (
        Question(total[0], "Total score (0-9)", "integer", code=total, bounds=(0, 9), calculated="%total"),
        Question(
            sub[0], "Psychosocial (distress) subscore, items 5-9 (0-5)", "integer", code=sub, bounds=(0, 5),
            calculated="%psychosocial",
        ),
        Question(risk[0], "Risk level", "choice", risk_options, code=risk, calculated=_RISK_EXPRESSION),
    )  # fmt: skip
    return Form(
        id="startback",
        url=codes.Q_STARTBACK,
        name="StartBack",
        title="STarT Back Screening Tool",
        description="STarT Back Screening Tool (Keele University) for the ESCAPE-pain back pathway, scored as "
        "on Keele's 'Using and scoring' page: total of items 1-9, psychosocial subscore of items 5-9.",
        questions=(*(_startback_item(c) for c in ITEM_CODES), *scores),
        code=codes.STARTBACK_PANEL,
        copyright=codes.KEELE_COPYRIGHT,
        variables=(("total", _count_scoring(ITEM_CODES)), ("psychosocial", _count_scoring(PSYCHOSOCIAL_CODES))),
    )


STARTBACK_FORM: Final = _startback_form()
FORMS: Final[tuple[Form, ...]] = (KNEE_HIP_FORM, BACK_FORM, STARTBACK_FORM)


def normalise_words(text: str) -> str:
    """Lower case, runs of spaces, hyphens or underscores as one hyphen: "Very much" -> "very-much"."""
    return re.sub(r"[\s_-]+", "-", text.strip().lower())


def form_for(url: str) -> Form | None:
    """Our form for a canonical, with or without ``|version`` (any version); None when not ours."""
    base = url.partition("|")[0]
    return next((form for form in FORMS if form.url == base), None)
