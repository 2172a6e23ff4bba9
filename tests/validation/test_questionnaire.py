"""QuestionnaireResponse against its Questionnaire (SDC validation, nhs-standards.md 7.4).

Our own Questionnaires and responses pass; break-one-thing cases on a test Questionnaire that uses every
rule (cases_v2b/questionnaire.json over cases_v2b/questionnaire-fixture.json); the BaRS NOC example pair.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.domain import load_referral
from escape_fhir.errors import Issue
from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.questionnaires import all_questionnaires, eligibility_response, startback_response
from escape_fhir.validation.questionnaire import check_questionnaire_response
from tests.helpers import REFERRAL_EXAMPLES, shared
from tests.validation.edits_v2b import apply_edits

CASES_DIR = Path(__file__).parent / "cases_v2b"
CASES: list[dict[str, Any]] = json.loads((CASES_DIR / "questionnaire.json").read_text())
FIXTURE: dict[str, Any] = json.loads((CASES_DIR / "questionnaire-fixture.json").read_text(), parse_float=Decimal)
QUESTIONNAIRES = {q["url"]: q for q in all_questionnaires()}
SNOMED_MEMBERS = {"22253000"}


def has_code(value_set: str, system: str, code: str) -> bool | None:
    """A stand-in terminology service: knows one code, cannot tell about ``unknown``."""
    return None if code == "unknown" else code in SNOMED_MEMBERS


def check(qr: dict[str, Any], base: str = "QuestionnaireResponse") -> list[Issue]:
    questionnaire = QUESTIONNAIRES[qr["questionnaire"].split("|")[0]]
    return check_questionnaire_response(qr, questionnaire, base)


def responses(path: Path) -> list[dict[str, Any]]:
    referral = load_referral(path.read_text())
    made = dict(id="x", subject="Patient/p", author="PractitionerRole/r", authored="2026-11-20")
    found = [eligibility_response(referral, **made)]
    if referral.start_back is not None:
        found.append(startback_response(referral.start_back, **made))
    return found


@pytest.mark.parametrize("path", REFERRAL_EXAMPLES, ids=[p.stem for p in REFERRAL_EXAMPLES])
def test_our_responses_pass(path: Path) -> None:
    for qr in responses(path):
        assert check(qr) == []


def test_fixture_passes() -> None:
    assert check_questionnaire_response(FIXTURE["response"], FIXTURE["questionnaire"], has_code=has_code) == []


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_break_one_thing(case: dict[str, Any]) -> None:
    qr = apply_edits(FIXTURE["response"], case["edits"])
    expected = [Issue(*row) for row in case["issues"]]
    assert check_questionnaire_response(qr, FIXTURE["questionnaire"], has_code=has_code) == expected


def test_base_prefixes_locations() -> None:
    qr = apply_edits(FIXTURE["response"], [["set", "item.0.text", "Your name"]])
    [issue] = check_questionnaire_response(qr, FIXTURE["questionnaire"], "Bundle.entry[9].resource", has_code)
    assert issue.location == "Bundle.entry[9].resource.item[0].text"


def test_unevaluable_enable_when_expression_warns_and_enables() -> None:
    questionnaire = apply_edits(
        FIXTURE["questionnaire"], [["set", "item.10.extension.0.valueExpression.expression", "%nowhere.exists()"]]
    )
    message = "enableWhenExpression of item 'older' cannot be evaluated; item taken as enabled"
    expected = [Issue("warning", "not-supported", message, "QuestionnaireResponse.item[10]")]
    assert check_questionnaire_response(FIXTURE["response"], questionnaire, has_code=has_code) == expected


def test_startback_answer_not_an_option() -> None:
    [_, qr] = responses(next(p for p in REFERRAL_EXAMPLES if p.stem == "back-physio-medium"))
    broken = apply_edits(qr, [["set", "item.0.answer.0.valueCoding.code", "maybe"]])
    message = (
        "answer https://w3id.org/escape-fhir/CodeSystem/startback-answer|maybe is not an answerOption of item '91340-0'"
    )
    assert check(broken) == [
        Issue("error", "code-invalid", message, "QuestionnaireResponse.item[0].answer[0].valueCoding")
    ]


def test_eligibility_duration_above_max_value() -> None:
    [qr] = responses(next(p for p in REFERRAL_EXAMPLES if p.stem == "knee-gp"))
    broken = apply_edits(qr, [["set", "item.1.answer.0.valueInteger", 1201]])
    message = "answer to item 'symptom-duration-months': 1201 is above the maxValue 1200"
    assert check(broken) == [Issue("error", "value", message, "QuestionnaireResponse.item[1].answer[0].valueInteger")]


def test_bars_noc_example_pair() -> None:
    """The BaRS pair: the response's item text has a doubled '?', which the HL7 validator also warns about."""
    folder = shared("fhir", "bars", "Examples")
    questionnaire = parse((folder / "Questionnaire for NOC.xml").read_bytes())
    qr = parse((folder / "QuestionnaireResponse for NOC.xml").read_bytes())
    message = "item text 'What is the nature of call??' differs from the Questionnaire's 'What is the nature of call?'"
    assert check_questionnaire_response(qr, questionnaire) == [
        Issue("warning", "value", message, "QuestionnaireResponse.item[0].text")
    ]
