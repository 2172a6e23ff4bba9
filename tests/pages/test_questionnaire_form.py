"""A Questionnaire as a web form (``pages/questionnaire_form.py``): enableWhen honoured (a disabled question
is neither asked nor required, and its answer is dropped), an error per question, our own Questionnaires
asked without their calculated items."""

from __future__ import annotations

from typing import Any

import pytest

from escape_fhir.fhir.questionnaires import questionnaire_for
from escape_fhir.pages.questionnaire_form import enabled, questions, read_answers, shown

FORM: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "item": [
        {"linkId": "pain", "text": "Do you have pain?", "type": "boolean"},
        {
            "linkId": "where",
            "text": "Where?",
            "type": "choice",
            "answerOption": [{"valueCoding": {"code": "knee", "display": "Knee"}}, {"valueCoding": {"code": "hip"}}],
            "enableWhen": [{"question": "pain", "operator": "=", "answerBoolean": True}],
        },
        {
            "linkId": "group",
            "type": "group",
            "item": [
                {
                    "linkId": "months",
                    "text": "How many months?",
                    "type": "integer",
                    "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                        {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 1200},
                    ],
                    "enableWhen": [
                        {"question": "where", "operator": "=", "answerCoding": {"code": "knee"}},
                        {"question": "where", "operator": "=", "answerCoding": {"code": "hip"}},
                    ],
                    "enableBehavior": "any",
                },
                {
                    "linkId": "since",
                    "text": "Since when?",
                    "type": "date",
                    "enableWhen": [{"question": "months", "operator": ">=", "answerInteger": 3}],
                },
            ],
        },
        {"linkId": "total", "text": "Score", "type": "integer", "readOnly": True},
    ],
}


def read(form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    return read_answers(list(questions(FORM)), form, lambda name: [v for v in [form.get(name)] if v])


def test_read_only_and_group_items_are_not_asked() -> None:
    assert [q.link_id for q in questions(FORM)] == ["pain", "where", "months", "since"]


def test_a_disabled_question_is_not_required_and_its_answer_is_dropped() -> None:
    answers, errors = read({"q-pain": "no", "q-where": "knee", "q-months": "12"})
    assert answers == {"pain": "no"}  # "where" is disabled by pain = no, so "months" by "where" unanswered
    assert errors == {}


def test_enabled_questions_are_required_each_with_its_error() -> None:
    answers, errors = read({"q-pain": "yes"})
    assert errors == {"q-where": "Answer the question: Where?"}  # "months" waits for "where"
    assert answers == {"pain": "yes"}
    _, errors = read({"q-pain": "yes", "q-where": "knee"})
    assert errors == {"q-months": "Answer the question: How many months?"}


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"q-pain": "maybe"}, ("q-pain", "Select yes or no: Do you have pain?")),
        ({"q-pain": "yes", "q-where": "elbow"}, ("q-where", "Select one of the answers: Where?")),
        (
            {"q-pain": "yes", "q-where": "hip", "q-months": "two"},
            ("q-months", "Enter a whole number: How many months?"),
        ),
        (
            {"q-pain": "yes", "q-where": "hip", "q-months": "1201"},
            ("q-months", "Enter a number from 0 to 1200: How many months?"),
        ),
        (
            {
                "q-pain": "yes",
                "q-where": "hip",
                "q-months": "6",
                "q-since-day": "30",
                "q-since-month": "2",
                "q-since-year": "2025",
            },
            ("q-since", "Enter a real date, for example 15 3 2025: Since when?"),
        ),
    ],
)
def test_bad_answers_are_named(form: dict[str, Any], error: tuple[str, str]) -> None:
    _, errors = read(form)
    assert error in errors.items()


def test_any_and_all_behaviours_and_comparisons() -> None:
    months, since = [q for q in questions(FORM) if q.link_id in ("months", "since")]
    assert enabled(months, {"where": "hip"}) and enabled(months, {"where": "knee"})
    assert not enabled(months, {"where": ""})
    assert enabled(since, {"months": "3"}) and not enabled(since, {"months": "2"})
    answers, errors = read(
        {
            "q-pain": "yes",
            "q-where": "hip",
            "q-months": "6",
            "q-since-day": "1",
            "q-since-month": "2",
            "q-since-year": "2025",
        }
    )
    assert errors == {}
    assert answers == {"pain": "yes", "where": "hip", "months": "6", "since": "1-2-2025"}
    assert shown(list(questions(FORM))[3], answers["since"]) == "1 February 2025"


def test_our_startback_questionnaire_asks_the_nine_items_not_the_scores() -> None:
    startback = questionnaire_for("https://w3id.org/escape-fhir/Questionnaire/startback")
    assert startback is not None
    asked = [q.link_id for q in questions(startback)]
    assert asked == ["91340-0", "91341-8", "91342-6", "91343-4", "91344-2", "91345-9", "91346-7", "91347-5", "91348-3"]
