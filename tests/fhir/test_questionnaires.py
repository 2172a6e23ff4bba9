"""The three Questionnaires and the mapping between answers and QuestionnaireResponse.

Case tables live in ``data/`` (STYLE.md habit 5): referrals for round trips, STarT Back responses as other
engines write them, and one-change error cases with the exact issues expected (habit 3).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from escape_fhir.domain import EligibilityAnswers, Pathway, Referral, StartBackResult, load_referral, score
from escape_fhir.domain.referral import BACK_ONLY, KNEE_HIP_ONLY
from escape_fhir.domain.startback import ITEM_CODES, answer_weights
from escape_fhir.errors import MappingError
from escape_fhir.fhir import codes
from escape_fhir.fhir._forms import PATHWAY_FIELDS
from escape_fhir.fhir.questionnaires import (
    all_questionnaires,
    eligibility_response,
    questionnaire_for,
    read_eligibility_response,
    read_startback_response,
    startback_response,
    write_profiles,
)

DATA = Path(__file__).parent / "data"
PROFILES = Path(__file__).resolve().parents[2] / "profiles"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
REFS = {"subject": "urn:uuid:6f1d0c1e-7a43-4f0e-9d55-2b0c7f1d4e01", "authored": "2025-05-12T10:15:00+01:00"}
AUTHOR = "urn:uuid:0b7e6a2c-1f9d-4c3a-8e21-5d4f3c2b1a09"


def table(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _step(doc: Any, part: str) -> Any:
    return doc[int(part)] if isinstance(doc, list) else doc[part]


def _parent(doc: Any, path: str) -> tuple[Any, Any]:
    *parents, last = path.split(".")
    for part in parents:
        doc = _step(doc, part)
    return doc, (int(last) if isinstance(doc, list) else last)


def changed(base: Any, case: dict[str, Any]) -> Any:
    """A deep copy of ``base`` with the case's ``unset``, ``set`` and ``append`` (dotted paths) applied."""
    doc = copy.deepcopy(base)
    for path in case.get("unset", []):
        parent, key = _parent(doc, path)
        del parent[key]
    for path, value in case.get("set", {}).items():
        parent, key = _parent(doc, path)
        parent[key] = copy.deepcopy(value)
    for path, value in case.get("append", {}).items():
        parent, key = _parent(doc, path)
        _step(parent, str(key)).append(copy.deepcopy(value))
    return doc


REFERRALS = table("questionnaire_referrals.json")


def referral(case: dict[str, Any]) -> Referral:
    return load_referral(changed(REFERRALS["bases"][case["base"]], case))


def params(rows: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(row, id=row["id"]) for row in rows]


# --- the Questionnaires ------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", all_questionnaires(), ids=lambda q: q["id"])
def test_questionnaire_parses_as_r4_with_the_agreed_header(q: dict[str, Any]) -> None:
    Questionnaire.model_validate(q)
    assert (q["status"], q["subjectType"], q["publisher"]) == ("active", ["Patient"], "escape-fhir")
    assert q["meta"]["profile"] == ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Questionnaire"]
    assert q["url"] in (codes.Q_KNEE_HIP, codes.Q_BACK, codes.Q_STARTBACK)
    assert q["version"] and q["name"] and q["title"]
    assert questionnaire_for(q["url"]) == q
    assert questionnaire_for(f"{q['url']}|{q['version']}") == q


def test_questionnaire_for_unknown_url_or_version() -> None:
    assert questionnaire_for("https://example.org/Questionnaire/x") is None
    assert questionnaire_for(f"{codes.Q_BACK}|0.0.1") is None


def test_profiles_folder_is_current(tmp_path: Path) -> None:
    written = write_profiles(tmp_path)
    assert [p.name for p in written] == [
        "Questionnaire-knee-hip-eligibility.json",
        "Questionnaire-back-eligibility.json",
        "Questionnaire-startback.json",
    ]
    for path in written:
        committed = PROFILES / path.name
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} is stale: run scripts/generate.py"
        )


@pytest.mark.parametrize(
    ("pathway", "other_only"),
    [pytest.param(Pathway.KNEE_HIP, BACK_ONLY, id="knee-hip"), pytest.param(Pathway.BACK, KNEE_HIP_ONLY, id="back")],
)
def test_eligibility_form_asks_every_field_of_its_pathway(pathway: Pathway, other_only: tuple[str, ...]) -> None:
    expected = set(EligibilityAnswers.model_fields) - set(other_only)
    assert set(PATHWAY_FIELDS[pathway]) == expected
    url = codes.Q_KNEE_HIP if pathway is Pathway.KNEE_HIP else codes.Q_BACK
    q = questionnaire_for(url)
    assert q is not None
    link_ids = [item["linkId"] for item in q["item"]]
    assert link_ids[:3] == ["affected-sites", "symptom-duration-months", "symptom-onset-date"]
    assert set(link_ids[3:]) == {f.replace("_", "-") for f in expected}


def test_startback_items_codes_and_weights() -> None:
    q = questionnaire_for(codes.Q_STARTBACK)
    assert q is not None
    assert q["copyright"] == codes.KEELE_COPYRIGHT
    assert q["code"][0]["code"] == "91349-1"
    items = q["item"]
    assert [i["linkId"] for i in items] == [*ITEM_CODES, "91351-7", "91350-9", "91352-5"]
    for item in items:
        assert item["code"][0]["system"] == codes.LOINC and item["code"][0]["code"] == item["linkId"]
    # LOINC's displays of the nine items are Keele's wording: the codes carry none, the texts are our own.
    assert all("display" not in item["code"][0] for item in items[:9])
    for item in items[:9]:
        weights = {
            o["valueCoding"]["code"]: o["extension"][0]["valueDecimal"]
            for o in item["answerOption"]
            if o["extension"][0]["url"] == ITEM_WEIGHT and o["valueCoding"]["system"] == codes.CS_STARTBACK_ANSWER
        }
        assert weights == dict(answer_weights(item["linkId"]))
    for item in items[9:]:
        assert item["readOnly"] is True
        assert [e["url"] for e in item["extension"]].count(CALCULATED) == 1
    assert [o["valueCoding"]["code"] for o in items[11]["answerOption"]] == ["LA9194-7", "LA8982-6", "LA9193-9"]


# --- STarT Back calculated expressions, evaluated with fhirpathpy --------------------------------------------


class Calculator:
    """Evaluates the Questionnaire's SDC variables, then each calculatedExpression (SDC 4.0 expressions)."""

    def __init__(self, questionnaire: dict[str, Any]) -> None:
        r4 = models["r4"]
        self.questionnaire = questionnaire
        self.variables = [
            (e["valueExpression"]["name"], fhirpath_compile(e["valueExpression"]["expression"], r4))
            for e in questionnaire["extension"]
            if e["url"] == VARIABLE
        ]
        self.items = {
            item["linkId"]: fhirpath_compile(ext["valueExpression"]["expression"], r4)
            for item in questionnaire["item"]
            for ext in item.get("extension", [])
            if ext["url"] == CALCULATED
        }

    def __call__(self, qr: dict[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = {"resource": qr, "questionnaire": self.questionnaire}
        for name, expression in self.variables:
            env[name] = _single(expression(qr, env))
        return {link: _single(expression(qr, env)) for link, expression in self.items.items()}


def _single(values: list[Any]) -> Any:
    assert len(values) == 1, values
    return values[0]


def all_answer_sets() -> list[dict[str, str]]:
    choices = [list(answer_weights(code)) for code in ITEM_CODES]
    return [dict(zip(ITEM_CODES, combo, strict=True)) for combo in itertools.product(*choices)]


def sample_answer_sets() -> list[dict[str, str]]:
    """125 of the 1,280 answer sets: every count of agreed physical items (1-4) and psychological items (5-8)
    with every item-9 answer, the agreed items rotating so each item counts somewhere.

    All 1,280 take about 25 s in fhirpathpy (its ``in`` over a union is slow); this sample reaches every
    (total, subscore) pair and so every risk boundary (total 3/4, subscore 3/4), checked below.
    """
    physical, psychological, bothersome = ITEM_CODES[:4], ITEM_CODES[4:8], ITEM_CODES[8]
    sets = []
    for k, j, item9 in itertools.product(range(5), range(5), answer_weights(bothersome)):
        agreed = {physical[(k + j + n) % 4] for n in range(k)} | {psychological[(k + j + n) % 4] for n in range(j)}
        answers = {code: "agree" if code in agreed else "disagree" for code in ITEM_CODES[:8]}
        sets.append(answers | {bothersome: item9})
    return sets


def test_sample_reaches_every_score_pair_and_every_positive_item() -> None:
    def pairs(sets: list[dict[str, str]]) -> set[tuple[int, int]]:
        return {(s.total, s.psychosocial) for s in map(score, sets)}

    sample = sample_answer_sets()
    assert pairs(sample) == pairs(all_answer_sets())
    assert {code for answers in sample for code, a in answers.items() if answer_weights(code)[a]} == set(ITEM_CODES)


def test_calculated_expressions_agree_with_the_domain_score() -> None:
    q = questionnaire_for(codes.Q_STARTBACK)
    assert q is not None
    calculate = Calculator(q)
    for answers in sample_answer_sets():
        qr = startback_response(answers, id="sb", author=None, **REFS)
        # Blank the score answers so the expressions cannot read back what the builder wrote.
        for item in qr["item"][9:]:
            del item["answer"]
        expected = score(answers)
        risk = codes.STARTBACK_RISK_ANSWERS[expected.risk.value]
        assert calculate(qr) == {
            "91351-7": expected.total,
            "91350-9": expected.psychosocial,
            "91352-5": {"system": codes.LOINC, "code": risk[0], "display": risk[1]},
        }, answers


# --- building and reading back -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(REFERRALS["cases"]))
def test_eligibility_round_trip(case: dict[str, Any]) -> None:
    ref = referral(case)
    qr = eligibility_response(ref, id="elig-1", author=AUTHOR, **REFS)
    QuestionnaireResponse.model_validate(qr)
    assert qr["status"] == "completed" and qr["authored"] == REFS["authored"]
    assert qr["questionnaire"].split("|")[0] == (codes.Q_KNEE_HIP if ref.pathway is Pathway.KNEE_HIP else codes.Q_BACK)
    _assert_texts_match(qr)
    got = read_eligibility_response(qr)
    assert (got.pathway, got.affected_sites, got.symptom_duration_months, got.answers) == (
        ref.pathway,
        ref.affected_sites,
        ref.symptom_duration_months,
        ref.eligibility,
    )
    assert got.warnings == ()


STARTBACK_CASES = [c for c in REFERRALS["cases"] if c["base"] == "back" and "startBack" not in c.get("unset", [])]


@pytest.mark.parametrize("case", params(STARTBACK_CASES))
def test_startback_round_trip(case: dict[str, Any]) -> None:
    ref = referral(case)
    assert ref.start_back is not None
    qr = startback_response(ref.start_back, id="sb-1", author=None, **REFS)
    QuestionnaireResponse.model_validate(qr)
    assert "author" not in qr
    _assert_texts_match(qr)
    got = read_startback_response(qr)
    expected = score(ref.start_back)
    assert got.answers == ref.start_back
    assert got.result == StartBackResult(
        total=expected.total, psychosocial=expected.psychosocial, risk=expected.risk.value
    )


def test_unanswered_questions_are_left_out() -> None:
    ref = referral({"base": "knee-hip", "unset": ["symptomDurationMonths", "eligibility"]})
    qr = eligibility_response(ref, id="e", author=None, **REFS)
    assert [item["linkId"] for item in qr["item"]] == ["affected-sites"]


def _assert_texts_match(qr: dict[str, Any]) -> None:
    """QR item text equals the Questionnaire's (SDC validation.xml)."""
    q = questionnaire_for(qr["questionnaire"])
    assert q is not None
    texts = {item["linkId"]: item["text"] for item in q["item"]}
    assert all(item["text"] == texts[item["linkId"]] for item in qr["item"])


# --- other engines' STarT Back responses ------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(table("startback_foreign.json")["cases"]))
def test_foreign_startback_response(case: dict[str, Any]) -> None:
    QuestionnaireResponse.model_validate(case["qr"])
    got = read_startback_response(case["qr"])
    expected_answers = None if case["answers"] is None else dict(zip(ITEM_CODES, case["answers"], strict=True))
    assert got.answers == expected_answers
    expected_result = None if case["result"] is None else StartBackResult(**case["result"])
    assert got.result == expected_result
    assert [(w.location, w.severity) for w in got.warnings] == [(loc, "warning") for loc, _ in case["warnings"]]
    for warning, (_, fragment) in zip(got.warnings, case["warnings"], strict=True):
        assert fragment in warning.message


# --- what cannot be mapped --------------------------------------------------------------------------------------


def _base_qr(name: str) -> dict[str, Any]:
    if name == "startback":
        answers = referral({"base": "back"}).start_back
        assert answers is not None
        return startback_response(answers, id="sb", author=None, **REFS)
    return eligibility_response(referral({"base": name}), id="e", author=AUTHOR, **REFS)


@pytest.mark.parametrize("case", params(table("questionnaire_errors.json")["cases"]))
def test_mapping_errors(case: dict[str, Any]) -> None:
    qr = changed(_base_qr(case["qr"]), case)
    reader_name = case.get("reader") or ("startback" if case["qr"] == "startback" else "eligibility")
    reader = read_startback_response if reader_name == "startback" else read_eligibility_response
    with pytest.raises(MappingError) as raised:
        reader(qr, case.get("base_path", "QuestionnaireResponse"))
    got = [(i.severity, i.code, i.location) for i in raised.value.issues]
    assert got == [("error", code, location) for code, _, location in case["issues"]]
    for issue, (_, fragment, _) in zip(raised.value.issues, case["issues"], strict=True):
        assert fragment in issue.message
