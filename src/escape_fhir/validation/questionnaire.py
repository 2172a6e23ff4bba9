"""A QuestionnaireResponse checked against its Questionnaire (SDC 4.0 validation, nhs-standards.md 7.4).

https://build.fhir.org/ig/HL7/sdc/validation.html and https://hl7.org/fhir/R4/questionnaireresponse.html:

* always (structure): every ``linkId`` is an item of the Questionnaire at the same level (nesting kept),
  in the Questionnaire's order; the answer type matches ``item.type``; display and group items carry no
  answer; a question has at most one answer unless it ``repeats`` (and a non-repeating item appears once,
  ``qrs-2``/``sdcqr-2``); ``maxOccurs``; ``item.text`` equals the Questionnaire's (a warning, as the HL7
  validator reports it);
* once ``status`` is ``completed`` or ``amended`` (in-progress responses may break these): items appear
  only when enabled (``enableWhen`` with ``enableBehavior``, ``enableWhenExpression``); required items are
  answered and ``minOccurs`` holds, both only for enabled items; answers are among the ``answerOption``
  (``answerValueSet`` through the ``has_code`` callback), within ``minValue``/``maxValue``, ``maxLength``
  and the ``regex`` extension.

``enableWhen`` looks for the answers of its question anywhere in the response (SDC's "closest ancestor"
rule for repeating groups is not applied). Read-only calculated items may be present, like any item.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeGuard

from escape_fhir.errors import Issue

__all__ = ["HasCode", "check_questionnaire_response", "find_questionnaire"]

Json = dict[str, Any]
#: ``has_code(value_set, system, code)``: True/False for membership, None when it cannot be told.
HasCode = Callable[[str, str, str], "bool | None"]

_EXT = "http://hl7.org/fhir/StructureDefinition/"
_SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
EXT_MIN_OCCURS = _EXT + "questionnaire-minOccurs"
EXT_MAX_OCCURS = _EXT + "questionnaire-maxOccurs"
EXT_MIN_VALUE = _EXT + "minValue"
EXT_MAX_VALUE = _EXT + "maxValue"
EXT_REGEX = _EXT + "regex"
EXT_ENABLE_WHEN_EXPRESSION = _SDC + "sdc-questionnaire-enableWhenExpression"

# item.type -> the answer value[x] names it allows (R4 QuestionnaireResponse.item.answer.value[x]).
_ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",),
    "decimal": ("valueDecimal",),
    "integer": ("valueInteger",),
    "date": ("valueDate",),
    "dateTime": ("valueDateTime",),
    "time": ("valueTime",),
    "string": ("valueString",),
    "text": ("valueString",),
    "url": ("valueUri",),
    "choice": ("valueCoding",),
    "open-choice": ("valueCoding", "valueString"),
    "attachment": ("valueAttachment",),
    "reference": ("valueReference",),
    "quantity": ("valueQuantity",),
}
_NO_ANSWERS = frozenset({"group", "display"})
_COMPARABLE = ("valueInteger", "valueDecimal", "valueDate", "valueDateTime", "valueTime", "valueQuantity")


def check_questionnaire_response(
    qr: Json, questionnaire: Json, base: str = "QuestionnaireResponse", has_code: HasCode | None = None
) -> list[Issue]:
    """Every issue of ``qr`` against ``questionnaire`` (both JSON), located from ``base``."""
    checker = _Checker(qr, questionnaire, qr.get("status") in ("completed", "amended"), has_code)
    checker.canonical(base)
    checker.items(_list(qr, "item"), _list(questionnaire, "item"), base, f"{base}.item")
    return checker.issues


def find_questionnaire(qr: Json, enclosing: Sequence[Json], lookup: Callable[[str], Json | None]) -> Json | None:
    """The Questionnaire that ``qr.questionnaire`` names, or None when none is at hand.

    Looked for where the reference validator looks: among the resources contained in the response
    (``#id``, or a contained Questionnaire's canonical), then in the resources enclosing it, innermost first
    (their ``contained``, and the entries of a Bundle, by canonical), then through
    ``lookup`` (the loaded packages and the project's own). A canonical with ``|version`` matches only that
    version (https://hl7.org/fhir/R4/references.html#canonical).
    """
    wanted = qr.get("questionnaire")
    if not isinstance(wanted, str):
        return None
    for holder in (qr, *reversed(enclosing)):
        for candidate in _list(holder, "contained"):
            if _is_questionnaire(candidate) and (
                wanted == f"#{candidate.get('id')}" or _canonical_matches(candidate, wanted)
            ):
                return candidate
        if holder.get("resourceType") == "Bundle":
            for entry in _list(holder, "entry"):
                resource = entry.get("resource")
                if _is_questionnaire(resource) and _canonical_matches(resource, wanted):
                    return resource
    return None if wanted.startswith("#") else lookup(wanted)


def _is_questionnaire(resource: Any) -> TypeGuard[Json]:
    return isinstance(resource, dict) and resource.get("resourceType") == "Questionnaire"


def _canonical_matches(questionnaire: Json, wanted: str) -> bool:
    url, bar, version = wanted.partition("|")
    return questionnaire.get("url") == url and (not bar or questionnaire.get("version") == version)


@dataclass
class _Checker:
    qr: Json
    questionnaire: Json
    strict: bool
    has_code: HasCode | None
    issues: list[Issue] = field(default_factory=list)
    answers: dict[str, list[Json]] = field(init=False)
    all_links: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.answers = {}
        for item in _walk_items(_list(self.qr, "item")):
            self.answers.setdefault(str(item.get("linkId")), []).extend(_list(item, "answer"))
        self.all_links = {str(q.get("linkId")) for q in _walk_items(_list(self.questionnaire, "item"))}

    def add(self, severity: str, code: str, message: str, location: str) -> None:
        self.issues.append(Issue(severity, code, message, location))

    def canonical(self, base: str) -> None:
        """``QuestionnaireResponse.questionnaire`` names this Questionnaire (``url|version``)."""
        url, _, version = str(self.qr.get("questionnaire", "")).partition("|")
        if url.startswith("#"):
            return  # a contained Questionnaire, found by its id
        q_url, q_version = self.questionnaire.get("url"), self.questionnaire.get("version")
        if url and q_url and (url != q_url or (version and q_version and version != q_version)):
            wanted = f"{q_url}|{q_version}" if version and q_version else q_url
            message = f"questionnaire {self.qr['questionnaire']!r} is not the Questionnaire {wanted!r}"
            self.add("error", "invalid", message, f"{base}.questionnaire")

    # --- items ------------------------------------------------------------------------------------------

    def items(self, responses: list[Json], questions: list[Json], parent: str, prefix: str) -> None:
        """Response items against the Questionnaire items of the same level."""
        by_link = {str(q.get("linkId")): (n, q) for n, q in enumerate(questions)}
        last_position, seen = -1, dict[str, int]()
        for i, item in enumerate(responses):
            location, link = f"{prefix}[{i}]", str(item.get("linkId"))
            if link not in by_link:
                self.unknown_link(link, f"{location}.linkId")
                continue
            position, question = by_link[link]
            if position < last_position:
                self.add("error", "structure", f"item {link!r} is out of the Questionnaire's order", location)
            last_position = position
            if link in seen and not (question.get("type") == "group" and question.get("repeats") is True):
                message = f"item {link!r} does not repeat but appears more than once (also item[{seen[link]}])"
                self.add("error", "structure", message, location)
            seen.setdefault(link, i)
            self.item(item, question, location)
        self.missing(responses, questions, parent)
        self.occurrences(responses, questions, prefix)

    def unknown_link(self, link: str, location: str) -> None:
        where = "at this level (nesting differs)" if link in self.all_links else "in the Questionnaire"
        self.add("error", "structure", f"linkId {link!r} is not an item {where}", location)

    def item(self, item: Json, question: Json, location: str) -> None:
        link = str(question.get("linkId"))
        self.text(item, question, location)
        if self.strict and not self.enabled(question, location):
            self.add("error", "business-rule", f"item {link!r} is answered but not enabled (enableWhen)", location)
        answers = _list(item, "answer")
        kind = str(question.get("type", ""))
        if kind in _NO_ANSWERS:
            if answers:
                self.add("error", "structure", f"{kind} item {link!r} cannot have answers", f"{location}.answer")
        else:
            self.answers_of(answers, question, location)
        if _list(item, "item") or kind == "group":
            self.items(_list(item, "item"), _list(question, "item"), location, f"{location}.item")

    def answers_of(self, answers: list[Json], question: Json, location: str) -> None:
        """A question's answers, and the items nested under each (R4: children of a question go in answer)."""
        if len(answers) > 1 and question.get("repeats") is not True:
            message = f"item {question.get('linkId')!r} does not repeat but has {len(answers)} answers"
            self.add("error", "structure", message, f"{location}.answer")
        for k, answer in enumerate(answers):
            here = f"{location}.answer[{k}]"
            self.answer(answer, question, here)
            self.items(_list(answer, "item"), _list(question, "item"), here, f"{here}.item")

    def text(self, item: Json, question: Json, location: str) -> None:
        text, expected = item.get("text"), question.get("text")
        if text is not None and expected is not None and text != expected:
            message = f"item text {text!r} differs from the Questionnaire's {expected!r}"
            self.add("warning", "value", message, f"{location}.text")

    def missing(self, responses: list[Json], questions: list[Json], parent: str) -> None:
        """Required items that are enabled must be answered (only once the response is complete)."""
        if not self.strict:
            return
        present = {str(r.get("linkId")): r for r in responses if _answered(r)}
        for question in questions:
            link = str(question.get("linkId"))
            if question.get("required") is True and link not in present and self.enabled(question, parent):
                self.add("error", "required", f"item {link!r} is required but has no answer", parent)

    def occurrences(self, responses: list[Json], questions: list[Json], prefix: str) -> None:
        """``minOccurs``/``maxOccurs``: repetitions of a group, answers of a question."""
        for question in questions:
            link = str(question.get("linkId"))
            matching = [r for r in responses if str(r.get("linkId")) == link]
            count = len(matching) if question.get("type") == "group" else sum(len(_list(r, "answer")) for r in matching)
            low, high = _extension(question, EXT_MIN_OCCURS), _extension(question, EXT_MAX_OCCURS)
            if isinstance(high, int) and count > high:
                self.add(
                    "error", "structure", f"item {link!r} has {count} occurrence(s), more than maxOccurs {high}", prefix
                )
            if self.strict and isinstance(low, int) and 0 < count < low:
                self.add(
                    "error", "required", f"item {link!r} has {count} occurrence(s), fewer than minOccurs {low}", prefix
                )

    # --- enableWhen (R4 Questionnaire.item.enableWhen; SDC enableWhenExpression) ----------------------------

    def enabled(self, question: Json, location: str) -> bool:
        expression = _extension(question, EXT_ENABLE_WHEN_EXPRESSION)
        if isinstance(expression, dict) and isinstance(expression.get("expression"), str):
            return self.enabled_by_expression(expression["expression"], question, location)
        conditions = _list(question, "enableWhen")
        if not conditions:
            return True
        results = (self.condition(c) for c in conditions)
        return all(results) if question.get("enableBehavior") == "all" else any(results)

    def enabled_by_expression(self, expression: str, question: Json, location: str) -> bool:
        from escape_fhir.validation.invariants import evaluate_expression  # the FHIRPath engine, when needed

        variables = {"resource": self.qr, "questionnaire": self.questionnaire, "context": self.qr}
        result = evaluate_expression(expression, self.qr, variables)
        if result is None:
            message = (
                f"enableWhenExpression of item {question.get('linkId')!r} cannot be evaluated; item taken as enabled"
            )
            self.add("warning", "not-supported", message, location)
            return True
        return result == [True]

    def condition(self, when: Json) -> bool:
        answers = [v for a in self.answers.get(str(when.get("question")), []) if (v := _value(a)) is not None]
        operator = when.get("operator")
        expected = _value(when, "answer")
        if operator == "exists":
            return bool(answers) == (expected is not None and expected[1] is True)
        if expected is None:
            return False
        return any(_compare(operator, actual, expected) for actual in answers)

    # --- answers ----------------------------------------------------------------------------------------

    def answer(self, answer: Json, question: Json, location: str) -> None:
        link, kind = str(question.get("linkId")), str(question.get("type", ""))
        found = _value(answer)
        if found is None or kind in _NO_ANSWERS:
            if found is None and not _list(answer, "item"):
                self.add("error", "required", f"answer to item {link!r} has no value", location)
            return
        name, value = found
        allowed = _allowed_types(question)
        if name not in allowed:
            message = f"answer to item {link!r} ({kind}) must be {' or '.join(allowed)}, not {name}"
            self.add("error", "structure", message, f"{location}.{name}")
        elif self.strict:
            self.constraints(name, value, question, f"{location}.{name}")

    def constraints(self, name: str, value: Any, question: Json, location: str) -> None:
        link = str(question.get("linkId"))
        for problem in _option_problems(name, value, question, self.has_code):
            self.add("warning" if question.get("type") == "open-choice" else "error", "code-invalid", problem, location)
        for problem in _value_problems(name, value, question):
            self.add("error", "value", f"answer to item {link!r}: {problem}", location)


# --- answer checks (pure functions) --------------------------------------------------------------------------


def _allowed_types(question: Json) -> tuple[str, ...]:
    """R4: choice answers are of the answerOption value types (integer, date, time, string, Coding, Reference)."""
    kind = str(question.get("type", ""))
    allowed = list(_ANSWER_TYPES.get(kind, ()))
    if kind in ("choice", "open-choice"):
        for option in _list(question, "answerOption"):
            option_value = _value(option)
            if option_value is not None and option_value[0] not in allowed:
                allowed.append(option_value[0])
    return tuple(allowed)


def _option_problems(name: str, value: Any, question: Json, has_code: HasCode | None) -> Iterator[str]:
    link = question.get("linkId")
    options = [v for o in _list(question, "answerOption") if (v := _value(o)) is not None]
    free_text = name == "valueString" and question.get("type") == "open-choice"
    if options and not free_text and not any(o == name and _same(name, ov, value) for o, ov in options):
        yield f"answer {_show(name, value)} is not an answerOption of item {link!r}"
    value_set = question.get("answerValueSet")
    if isinstance(value_set, str) and name == "valueCoding" and has_code is not None:
        system, code = str(value.get("system", "")), str(value.get("code", ""))
        if has_code(value_set, system, code) is False:
            yield f"answer {_show(name, value)} is not in the answerValueSet {value_set!r} of item {link!r}"


def _value_problems(name: str, value: Any, question: Json) -> Iterator[str]:
    if name in _COMPARABLE:
        number = value.get("value") if name == "valueQuantity" else value
        for url, word, bad in ((EXT_MIN_VALUE, "below the minValue", -1), (EXT_MAX_VALUE, "above the maxValue", 1)):
            bound = _extension(question, url)
            bound = bound.get("value") if isinstance(bound, dict) else bound
            if bound is not None and number is not None and _order(number, bound) == bad:
                yield f"{number} is {word} {bound}"
    if isinstance(value, str):
        max_length = question.get("maxLength")
        if isinstance(max_length, int) and len(value) > max_length:
            yield f"{len(value)} characters, more than maxLength {max_length}"
        regex = _extension(question, EXT_REGEX)
        if isinstance(regex, str) and re.fullmatch(regex, value) is None:
            yield f"{value!r} does not match the regex {regex!r}"


def _compare(operator: Any, actual: tuple[str, Any], expected: tuple[str, Any]) -> bool:
    """One enableWhen comparison (R4 Questionnaire.item.enableWhen.operator)."""
    (a_name, a_value), (e_name, e_value) = actual, expected
    if a_name.removeprefix("value") != e_name.removeprefix("answer"):
        return bool(operator == "!=")
    if operator in ("=", "!="):
        return bool(_same(a_name, a_value, e_value) == (operator == "="))
    order = _order(
        a_value.get("value") if a_name == "valueQuantity" else a_value,
        e_value.get("value") if a_name == "valueQuantity" else e_value,
    )
    return {">": order == 1, "<": order == -1, ">=": order in (0, 1), "<=": order in (0, -1)}.get(str(operator), False)


# What makes two answers equal, by value[x] type (a Coding without system matches only one without system).
_SAME_BY = {"valueCoding": ("system", "code"), "valueReference": ("reference",), "valueQuantity": ("value", "code")}


def _same(name: str, a: Any, b: Any) -> bool:
    keys = _SAME_BY.get(name)
    if keys is None:
        return bool(a == b)
    return isinstance(a, dict) and isinstance(b, dict) and all(a.get(k) == b.get(k) for k in keys)


def _order(a: Any, b: Any) -> int | None:
    """-1/0/1 for numbers, or ISO dates/times of the same length (so the same precision); None otherwise."""
    numbers = (int, Decimal, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return (a > b) - (a < b)
    if isinstance(a, str) and isinstance(b, str) and len(a) == len(b):
        return (a > b) - (a < b)
    return None


def _show(name: str, value: Any) -> str:
    if name == "valueCoding" and isinstance(value, dict):
        return f"{value.get('system', '')}|{value.get('code', '')}" if value.get("system") else repr(value.get("code"))
    return repr(value)


# --- JSON helpers --------------------------------------------------------------------------------------------


def _list(node: Json, key: str) -> list[Json]:
    value = node.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _value(node: Json, prefix: str = "value") -> tuple[str, Any] | None:
    """The one ``value[x]`` (or ``answer[x]``) of an element as (name, value)."""
    return next(
        ((k, v) for k, v in node.items() if k.startswith(prefix) and k[len(prefix) : len(prefix) + 1].isupper()), None
    )


def _extension(node: Json, url: str) -> Any:
    for ext in _list(node, "extension"):
        if ext.get("url") == url:
            found = _value(ext)
            return found[1] if found else None
    return None


def _answered(item: Json) -> bool:
    return any(_value(a) is not None for a in _list(item, "answer")) or bool(_list(item, "item"))


def _walk_items(items: list[Json]) -> Iterator[Json]:
    for item in items:
        yield item
        yield from _walk_items(_list(item, "item"))
        for answer in _list(item, "answer"):
            yield from _walk_items(_list(answer, "item"))
