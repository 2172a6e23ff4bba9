"""The three ESCAPE-pain Questionnaires and the mapping between answers and QuestionnaireResponse.

* knee/hip and back eligibility: affected sites, symptom duration and one boolean item per
  :class:`~escape_fhir.domain.EligibilityAnswers` field that applies to the pathway;
* STarT Back (LOINC panel 91349-1, nhs-standards.md 4): nine LOINC-coded items whose answer options carry
  ``itemWeight``, and three read-only score items with SDC ``calculatedExpression``.

The Questionnaires are defined in :mod:`escape_fhir.fhir._forms` (the source of truth);
:func:`write_profiles` writes them to ``profiles/`` and a test checks that folder is current. Reading
responses (ours and other engines') is in :mod:`escape_fhir.fhir.qr_read`, re-exported here.

STarT Back: Copyright (c) University of Keele (``codes.KEELE_COPYRIGHT``, kept on the Questionnaire).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from escape_fhir.domain.referral import EligibilityAnswers, Referral
from escape_fhir.domain.startback import ITEM_CODES, parse_answers, score
from escape_fhir.fhir._forms import (
    ELIGIBILITY_FORMS,
    FORMS,
    LINK_DURATION,
    LINK_ONSET,
    LINK_SITES,
    PATHWAY_FIELDS,
    QR_PROFILE,
    RISK_CODES,
    STARTBACK_FORM,
    VERSION,
    Form,
    Question,
    form_for,
    link_id,
)
from escape_fhir.fhir.codes import STARTBACK_RISK, STARTBACK_SUBSCORE, STARTBACK_TOTAL
from escape_fhir.fhir.qr_read import (
    EligibilityFromResponse,
    StartBackFromResponse,
    read_eligibility_response,
    read_startback_response,
)

__all__ = [
    "VERSION",
    "EligibilityFromResponse",
    "StartBackFromResponse",
    "all_questionnaires",
    "eligibility_response",
    "questionnaire_for",
    "read_eligibility_response",
    "read_startback_response",
    "startback_response",
    "write_profiles",
]


# --- public: Questionnaires ------------------------------------------------------------------------------


def all_questionnaires() -> list[dict[str, Any]]:
    """The three Questionnaires as FHIR JSON dicts (fresh copies)."""
    return [form.to_fhir() for form in FORMS]


def questionnaire_for(url: str) -> dict[str, Any] | None:
    """The Questionnaire for a canonical (``url`` or ``url|version``), or None when it is not ours."""
    form = form_for(url)
    if form is None or url.partition("|")[2] not in ("", VERSION):
        return None
    return form.to_fhir()


def write_profiles(folder: Path) -> list[Path]:
    """Write ``Questionnaire-<id>.json`` for each form into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for form in FORMS:
        path = folder / f"Questionnaire-{form.id}.json"
        path.write_text(json.dumps(form.to_fhir(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


# --- public: QuestionnaireResponses -----------------------------------------------------------------------


def _response(
    form: Form, items: list[dict[str, Any]], *, id: str, subject: str, author: str | None, authored: str
) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": id,
        "meta": {"profile": [QR_PROFILE]},
        "questionnaire": f"{form.url}|{VERSION}",
        "status": "completed",
        "subject": {"reference": subject},
        "authored": authored,
    }
    if author is not None:
        qr["author"] = {"reference": author}
    qr["item"] = items
    return qr


def _item(question: Question, answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    # Item text equal to the Questionnaire's (SDC validation, nhs-standards.md 7.4).
    return {"linkId": question.link_id, "text": question.text, "answer": list(answers)}


def _coding_answer(question: Question, code: str) -> dict[str, Any]:
    option = next(o for o in question.options if o.code == code)
    return {"valueCoding": option.coding()}


def eligibility_response(
    referral: Referral, *, id: str, subject: str, author: str | None, authored: str
) -> dict[str, Any]:
    """The eligibility QuestionnaireResponse of a referral (knee/hip or back form by its pathway).

    Unanswered questions (None) are left out. ``subject`` and ``author`` are reference strings.
    """
    form = ELIGIBILITY_FORMS[referral.pathway]
    sites = _question(form, LINK_SITES)
    items = []
    if referral.affected_sites:  # no site stated: no item (an item with no answer is not valid, qrs-1)
        items.append(_item(sites, [_coding_answer(sites, s.value) for s in dict.fromkeys(referral.affected_sites)]))
    if referral.symptom_duration_months is not None:
        duration = _question(form, LINK_DURATION)
        items.append(_item(duration, [{"valueInteger": referral.symptom_duration_months}]))
    if referral.symptom_onset_date is not None:
        onset = _question(form, LINK_ONSET)
        items.append(_item(onset, [{"valueDate": referral.symptom_onset_date.isoformat()}]))
    items.extend(_boolean_items(form, referral.eligibility, PATHWAY_FIELDS[referral.pathway]))
    return _response(form, items, id=id, subject=subject, author=author, authored=authored)


def _question(form: Form, link: str) -> Question:
    question = form.question(link)
    if question is None:  # a programming error: every link used here is defined in _forms
        raise LookupError(f"{form.id} has no item {link!r}")
    return question


def _boolean_items(form: Form, answers: EligibilityAnswers, fields: Sequence[str]) -> list[dict[str, Any]]:
    items = []
    for field in fields:
        value = getattr(answers, field)
        if value is not None:
            items.append(_item(_question(form, link_id(field)), [{"valueBoolean": value}]))
    return items


def startback_response(
    answers: Mapping[str, str], *, id: str, subject: str, author: str | None, authored: str
) -> dict[str, Any]:
    """The STarT Back QuestionnaireResponse: nine answers and the three scores filled in.

    ``answers`` maps LOINC item codes to answer codes (raises ScoringInputError when incomplete/unknown).
    """
    checked = parse_answers(answers)
    result = score(checked)
    questions = [_question(STARTBACK_FORM, c) for c in ITEM_CODES]
    items = [_item(q, [_coding_answer(q, checked[q.link_id])]) for q in questions]
    total, sub, risk = (_question(STARTBACK_FORM, c[0]) for c in (STARTBACK_TOTAL, STARTBACK_SUBSCORE, STARTBACK_RISK))
    items.append(_item(total, [{"valueInteger": result.total}]))
    items.append(_item(sub, [{"valueInteger": result.psychosocial}]))
    items.append(_item(risk, [_coding_answer(risk, RISK_CODES[result.risk.value][0])]))
    return _response(STARTBACK_FORM, items, id=id, subject=subject, author=author, authored=authored)
