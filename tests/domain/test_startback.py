"""STarT Back scoring (nhs-standards.md section 4; Keele "Using and scoring"; LOINC 91349-1 panel).

The exhaustive check compares ``score`` with the rule as stated here, independently of the module's
weights and helpers: an item is *positive* when answered agree (items 1-8) or very much / extremely
(item 9); total = number of positive items; subscore = positive items among 5-9; risk: total 3 or less is
low, otherwise subscore 4 or more is high and anything else medium.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from escape_fhir.domain import ITEM_CODES, Risk, StartBackScore, parse_answers, score, startback_problems
from escape_fhir.errors import InputError, ScoringInputError

from . import changed, load_table

# LOINC item codes, item 1 first, copied from the LOINC panel 91349-1 (not from the module).
LOINC_ITEMS = {
    1: "91340-0",
    2: "91341-8",
    3: "91342-6",
    4: "91343-4",
    5: "91344-2",
    6: "91345-9",
    7: "91346-7",
    8: "91347-5",
    9: "91348-3",
}
ITEM9_ANSWERS = ("not-at-all", "slightly", "moderately", "very-much", "extremely")
ITEM9_POSITIVE = {"very-much", "extremely"}
PSYCHOSOCIAL_ITEMS = {5, 6, 7, 8, 9}
# (total <= 3, subscore >= 4) -> risk. Subscore >= 4 with total <= 3 cannot happen.
RISK_TABLE = {(True, False): "low", (False, False): "medium", (False, True): "high"}

TABLE = load_table("startback.json")


def answers_from(agreed: set[int], item9: str) -> dict[str, str]:
    answers = {LOINC_ITEMS[n]: "agree" if n in agreed else "disagree" for n in range(1, 9)}
    answers[LOINC_ITEMS[9]] = item9
    return answers


def expected(agreed: set[int], item9: str) -> tuple[int, int, str]:
    positive = set(agreed) | ({9} if item9 in ITEM9_POSITIVE else set())
    total = len(positive)
    subscore = len(positive & PSYCHOSOCIAL_ITEMS)
    return total, subscore, RISK_TABLE[(total <= 3, subscore >= 4)]


def _all_combinations() -> list[Any]:
    params = []
    for agree_flags in itertools.product((False, True), repeat=8):
        agreed = {n for n, flag in zip(range(1, 9), agree_flags, strict=True) if flag}
        pattern = "".join("A" if n in agreed else "D" for n in range(1, 9))
        for item9 in ITEM9_ANSWERS:
            params.append(pytest.param(agreed, item9, id=f"items1-8 {pattern} item9 {item9}"))
    return params


ALL_COMBINATIONS = _all_combinations()


def test_every_combination_is_enumerated() -> None:
    assert len(ALL_COMBINATIONS) == 2**8 * 5 == 1280


def test_item_codes_are_the_loinc_items_in_order() -> None:
    assert tuple(LOINC_ITEMS[n] for n in range(1, 10)) == ITEM_CODES


@pytest.mark.parametrize(("agreed", "item9"), ALL_COMBINATIONS)
def test_score_matches_the_rule(agreed: set[int], item9: str) -> None:
    total, subscore, risk = expected(agreed, item9)
    result = score(answers_from(agreed, item9))
    assert (result.total, result.psychosocial, result.risk.value) == (total, subscore, risk)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in TABLE["scores"]])
def test_named_boundary(case: dict[str, Any]) -> None:
    agreed, item9 = set(case["agree"]), case["item9"]
    # The table's expectations are themselves the rule: check them against it, then the module.
    assert expected(agreed, item9) == (case["total"], case["psychosocial"], case["risk"])
    assert score(answers_from(agreed, item9)) == StartBackScore(
        total=case["total"], psychosocial=case["psychosocial"], risk=Risk(case["risk"])
    )


def test_boundary_table_covers_both_sides_of_each_threshold() -> None:
    seen = {(c["total"], c["psychosocial"]) for c in TABLE["scores"]}
    assert {(3, 0), (4, 0), (3, 3), (4, 3), (4, 4)} <= seen


def test_parse_answers_returns_the_nine_answers_in_item_order() -> None:
    answers = answers_from({1, 5}, "moderately")
    shuffled = dict(reversed(list(answers.items())))
    parsed = parse_answers(shuffled)
    assert list(parsed) == [LOINC_ITEMS[n] for n in range(1, 10)]
    assert parsed == answers


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in TABLE["errors"]])
def test_parse_answers_names_every_bad_item(case: dict[str, Any]) -> None:
    raw = case["raw"] if "raw" in case else changed(answers_from(set(), "not-at-all"), case)
    with pytest.raises(ScoringInputError) as caught:
        parse_answers(raw)
    errors = caught.value.errors
    assert [e.location for e in errors] == [loc for loc, _ in case["errors"]]
    for error, (_, fragment) in zip(errors, case["errors"], strict=True):
        assert fragment in error.message
    # The exception text names every item too, for logs.
    for loc, fragment in case["errors"]:
        assert (f"{loc}: {fragment}" if loc else fragment) in str(caught.value)


def test_score_refuses_unchecked_answers() -> None:
    answers = answers_from({1}, "slightly")
    del answers[LOINC_ITEMS[4]]
    with pytest.raises(ScoringInputError) as caught:
        score(answers)
    assert [(e.location, e.message) for e in caught.value.errors] == [(LOINC_ITEMS[4], "missing answer")]


def test_scoring_error_is_an_input_error() -> None:
    assert issubclass(ScoringInputError, InputError)


def test_as_dict_shape() -> None:
    result = score(answers_from({1, 2, 5, 6}, "very-much"))
    as_dict = result.as_dict()
    assert as_dict == {"total": 5, "psychosocial": 3, "risk": "medium"}
    assert type(as_dict["risk"]) is str  # a plain string, ready for JSON, not the enum
    assert all(type(as_dict[k]) is int for k in ("total", "psychosocial"))


# --- a received result: startback_problems ---------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in TABLE["results"]])
def test_received_result_problems(case: dict[str, Any]) -> None:
    assert startback_problems(case["total"], case["psychosocial"], case["risk"]) == case["problems"]


@pytest.mark.parametrize("risk", ["low", "medium", "high"])
def test_every_complete_result_is_consistent_exactly_when_keele_gives_its_risk(risk: str) -> None:
    # Independently of the module: RISK_TABLE above is the rule as Keele states it.
    for total, subscore in itertools.product(range(10), range(6)):
        consistent = subscore <= total and RISK_TABLE[(total <= 3, subscore >= 4)] == risk
        assert (startback_problems(total, subscore, risk) == []) is consistent, (total, subscore, risk)


def _interpreted_startback() -> dict[str, Any]:
    """domain/startback.py run by the interpreter (the imported module is compiled with the reader)."""
    import importlib.util
    import sys
    from pathlib import Path

    from escape_fhir.domain import startback as module

    path = Path(module.__file__).with_name("startback.py")
    spec = importlib.util.spec_from_file_location("startback_interpreted", path)
    assert spec is not None and spec.loader is not None
    plain = importlib.util.module_from_spec(spec)
    sys.modules["startback_interpreted"] = plain  # dataclasses look the module up while the class is made
    try:
        spec.loader.exec_module(plain)
    finally:
        del sys.modules["startback_interpreted"]
    return vars(plain)


def test_compiled_startback_agrees_with_its_source() -> None:
    from escape_fhir.domain import startback as module

    plain = _interpreted_startback()
    assert type(plain["startback_field_problems"]).__name__ == "function"  # the source, interpreted
    values: list[object] = [None, -1, 0, 1, 3, 4, 5, 6, 9, 10, True, "4", 2.0]
    for total in values:
        for sub in values:
            for risk in ("low", "medium", "high", "none", None, 3):
                got = module.startback_field_problems(total, sub, risk)
                assert got == plain["startback_field_problems"](total, sub, risk), (total, sub, risk)
    for bits in range(2**9):
        answers = {c: ("agree" if bits >> i & 1 else "disagree") for i, c in enumerate(module.ITEM_CODES[:8])}
        for last in ("not-at-all", "moderately", "very-much", "extremely"):
            got_score = module.score(answers | {module.ITEM_CODES[8]: last})
            want = plain["score"](answers | {module.ITEM_CODES[8]: last})
            assert (got_score.total, got_score.psychosocial, got_score.risk.value) == (
                want.total,
                want.psychosocial,
                want.risk.value,
            )
    for raw in ({}, {"x": 1}, {module.ITEM_CODES[0]: "maybe"}, [], "agree"):
        errors = []
        for parse in (module.parse_answers, plain["parse_answers"]):
            with pytest.raises(ScoringInputError) as caught:
                parse(raw)
            errors.append(str(caught.value))
        assert errors[0] == errors[1]


def test_startback_compiled_with_the_reader() -> None:
    from escape_fhir.domain import startback as module
    from escape_fhir.fhir import readers

    if readers.__file__.endswith(".py"):
        pytest.skip("the reader is not compiled here (no C compiler at setup, or ESCAPE_FHIR_PURE=1)")
    assert module.__file__.endswith(".so"), module.__file__
    assert type(module.startback_problems).__name__ != "function"  # a mypyc native function
