"""A FHIR Questionnaire as a web form: the questions to ask, ``enableWhen`` honoured, the posted answers
checked with an error per question, NHS.UK style. Generic over item types (boolean, integer, decimal,
date, string, text, choice, group); read-only (calculated) items are not asked.

Answers are kept as text by linkId: ``"yes"``/``"no"``, digits, ``YYYY-MM-DD``, a choice's code, or a list
of codes for a repeating choice. A question that ``enableWhen`` disables is neither asked nor required, and
its answer is dropped (Questionnaire.item.enableWhen, FHIR R4 questionnaire.html#enableWhen)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

Json = dict[str, Any]
Answer = str | list[str]
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
_INTEGER = re.compile(r"-?[0-9]{1,9}")


@dataclass(frozen=True)
class Question:
    link_id: str
    text: str
    type: str
    options: tuple[tuple[str, str], ...]
    repeats: bool
    bounds: tuple[int | None, int | None]
    item: Json

    @property
    def field_id(self) -> str:
        """The HTML id and name of the question (linkIds may hold dots, as LOINC codes hold dashes)."""
        return "q-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.link_id)


def _extension(item: Json, url: str) -> int | None:
    for ext in item.get("extension") or []:
        if ext.get("url") == url and isinstance(ext.get("valueInteger"), int):
            return int(ext["valueInteger"])
    return None


def questions(questionnaire: Json) -> Iterator[Question]:
    """Every question that is asked, in order, groups flattened (read-only items and display items left out)."""
    for item in _walk(questionnaire.get("item") or []):
        if item.get("type") in ("group", "display") or item.get("readOnly"):
            continue
        options = tuple(
            (str(o["valueCoding"].get("code")), str(o["valueCoding"].get("display") or o["valueCoding"].get("code")))
            for o in item.get("answerOption") or []
            if isinstance(o.get("valueCoding"), dict)
        )
        bounds = (_extension(item, MIN_VALUE), _extension(item, MAX_VALUE))
        yield Question(
            str(item["linkId"]),
            str(item.get("text", "")),
            str(item["type"]),
            options,
            bool(item.get("repeats")),
            bounds,
            item,
        )


def _walk(items: list[Json]) -> Iterator[Json]:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])


def _answer_value(condition: Json) -> tuple[str, Any] | None:
    for key, value in condition.items():
        if key.startswith("answer"):
            return key.removeprefix("answer"), value
    return None


def _compare(operator: str, have: Any, want: Any) -> bool:
    if operator == "=":
        return bool(have == want)
    if operator == "!=":
        return bool(have != want)
    try:
        return bool({">": have > want, "<": have < want, ">=": have >= want, "<=": have <= want}[operator])
    except (TypeError, KeyError):
        return False


def _typed(kind: str, text: str) -> Any:
    if kind == "Boolean":
        return {"yes": True, "no": False}.get(text)
    if kind in ("Integer", "Decimal"):
        return int(text) if _INTEGER.fullmatch(text) else None
    return text


def _condition_holds(condition: Json, answers: Mapping[str, Answer]) -> bool:
    given = answers.get(str(condition.get("question")))
    values = given if isinstance(given, list) else ([given] if given not in (None, "") else [])
    if condition.get("operator") == "exists":
        return bool(values) == bool(condition.get("answerBoolean"))
    expected = _answer_value(condition)
    if expected is None:
        return False
    kind, want = expected
    if kind == "Coding":
        want = want.get("code") if isinstance(want, dict) else None
    return any(_compare(str(condition.get("operator")), _typed(kind, str(v)), want) for v in values)


def enabled(question: Question, answers: Mapping[str, Answer]) -> bool:
    conditions = question.item.get("enableWhen") or []
    if not conditions:
        return True
    results = [_condition_holds(c, answers) for c in conditions]
    return all(results) if question.item.get("enableBehavior", "all") == "all" else any(results)


def read_answers(
    asked: list[Question], form: Mapping[str, Any], getlist: Any, optional: frozenset[str] = frozenset()
) -> tuple[dict[str, Answer], dict[str, str]]:
    """The answers posted for ``asked`` and an error per question (field id -> message). Every enabled
    question is required except the linkIds in ``optional``; disabled questions' answers are dropped."""
    answers: dict[str, Answer] = {}
    for q in asked:
        if q.type == "date":
            parts = [str(form.get(f"{q.field_id}-{p}") or "").strip() for p in ("day", "month", "year")]
            answers[q.link_id] = "-".join(parts) if any(parts) else ""
        elif q.type == "choice" and q.repeats:
            answers[q.link_id] = [str(v) for v in getlist(q.field_id)]
        else:
            answers[q.link_id] = str(form.get(q.field_id) or "").strip()
    errors: dict[str, str] = {}
    for q in asked:
        if not enabled(q, answers):
            answers.pop(q.link_id, None)
            continue
        problem = _problem(q, answers[q.link_id], q.link_id in optional)
        if problem:
            errors[q.field_id] = problem
        if answers[q.link_id] in ("", []):
            answers.pop(q.link_id)
    return answers, errors


def _problem(q: Question, value: Answer, optional: bool) -> str | None:
    if value in ("", []):
        return None if optional else f"Answer the question: {q.text}"
    codes = {code for code, _ in q.options}
    if q.type == "boolean" and value not in ("yes", "no"):
        return f"Select yes or no: {q.text}"
    if q.type == "choice" and any(v not in codes for v in ([value] if isinstance(value, str) else value)):
        return f"Select one of the answers: {q.text}"
    if q.type == "integer":
        low, high = q.bounds
        if not isinstance(value, str) or not _INTEGER.fullmatch(value):
            return f"Enter a whole number: {q.text}"
        if (low is not None and int(value) < low) or (high is not None and int(value) > high):
            return f"Enter a number from {low} to {high}: {q.text}"
    if q.type == "date":
        return None if parse_date(str(value)) else f"Enter a real date, for example 15 3 2025: {q.text}"
    return None


def parse_date(text: str) -> date | None:
    """``D-M-YYYY`` (as the date inputs post it) or ``YYYY-MM-DD``."""
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    day, month, year = (
        (int(parts[0]), int(parts[1]), int(parts[2]))
        if len(parts[2]) == 4
        else (int(parts[2]), int(parts[1]), int(parts[0]))
    )
    try:
        return date(year, month, day) if 1900 <= year <= 9999 else None
    except ValueError:
        return None


def shown(q: Question, value: Answer | None) -> str:
    """An answer as words, for the check-your-answers page."""
    if value in (None, "", []):
        return "Not answered"
    labels = dict(q.options)
    if q.type == "boolean":
        return "Yes" if value == "yes" else "No"
    if q.type == "choice":
        return ", ".join(labels.get(v, v) for v in (value if isinstance(value, list) else [value]))
    if q.type == "date":
        found = parse_date(str(value))
        return found.strftime("%-d %B %Y") if found else str(value)
    return str(value)
