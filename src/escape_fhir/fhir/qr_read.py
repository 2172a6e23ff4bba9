"""Reading ESCAPE-pain answers back from QuestionnaireResponses: ours and other engines'.

Every problem is collected and raised at once as :class:`~escape_fhir.errors.MappingError`, each issue with
a FHIRPath location from ``base`` (e.g. ``Bundle.entry[2].resource.item[3].answer[0]``). Issue codes
(FHIR issue-type):

* ``invalid``: an item our questionnaire does not define, an item given twice, several answers to a
  question that does not repeat, an item list that is not a list;
* ``value``: an answer that is unknown, of the wrong type or out of range; scores that disagree;
* ``required``: no questionnaire canonical, an item with no linkId, STarT Back items missing;
* ``not-supported``: a questionnaire canonical that is not one of ours (eligibility), or one of our other
  questionnaires.

STarT Back responses from other engines (any other canonical, or none) are read leniently: an item is
recognised by a linkId or ``definition`` equal to, or ending in, its LOINC code, at any depth; answers may
be words ("Agree", "very much") in a Coding or a string, or booleans for items 1-8; items not recognised
are ignored with a warning. QuestionnaireResponse items carry no ``code`` in R4, hence linkId/definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from escape_fhir.domain.referral import EligibilityAnswers, Pathway, Site, StartBackResult
from escape_fhir.domain.startback import ITEM_CODES, risk_for, score
from escape_fhir.errors import Issue, MappingError
from escape_fhir.fhir import codes
from escape_fhir.fhir._forms import (
    ELIGIBILITY_FORMS,
    LINK_DURATION,
    LINK_ONSET,
    LINK_SITES,
    PATHWAY_FIELDS,
    RISK_CODES,
    STARTBACK_FORM,
    STARTBACK_TEXT,
    Form,
    Question,
    form_for,
    link_id,
    normalise_words,
)

SCORE_CODES: Final = (codes.STARTBACK_TOTAL[0], codes.STARTBACK_SUBSCORE[0], codes.STARTBACK_RISK[0])
_RISK_BY_CODE: Final = {code: risk for risk, (code, _display) in RISK_CODES.items()}
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
#: ``link_id`` of every eligibility field, worked out once (``link_id`` is interpreted Python, asked twice per
#: field of every response read).
_LINK_OF_FIELD: Final = {f: link_id(f) for fields in PATHWAY_FIELDS.values() for f in fields}
#: Each site by its value: a dict lookup, where ``Site(value)`` is a call into the Enum machinery (Python).
_SITE_OF_VALUE: Final[dict[str, Site]] = {site.value: site for site in Site}


@dataclass(frozen=True)
class EligibilityFromResponse:
    """The eligibility answers of a QuestionnaireResponse; ``None`` / absent means not answered."""

    pathway: Pathway
    affected_sites: list[Site]
    symptom_duration_months: int | None
    symptom_onset_date: str | None
    answers: EligibilityAnswers
    warnings: tuple[Issue, ...] = ()


@dataclass(frozen=True)
class StartBackFromResponse:
    """STarT Back item answers (all nine, keyed by LOINC code) and the scores given, when present."""

    answers: dict[str, str] | None
    result: StartBackResult | None
    warnings: tuple[Issue, ...] = ()


class _Issues:
    def __init__(self) -> None:
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []

    def error(self, code: str, message: str, location: str) -> None:
        self.errors.append(Issue("error", code, message, location))

    def warn(self, message: str, location: str) -> None:
        self.warnings.append(Issue("warning", "not-supported", message, location))

    def check(self) -> None:
        if self.errors:
            raise MappingError(self.errors)


class _Answered:
    """One recognised item: its question, its location and its answers converted to Python values.

    A plain (compiled) class rather than a NamedTuple, whose ``__new__`` is interpreted: one per item read."""

    __slots__ = ("given", "location", "question", "values")

    def __init__(self, question: Question, location: str, values: list[Any], given: int) -> None:
        self.question = question
        self.location = location
        self.values = values
        self.given = given  # answers present, whether or not they could be converted

    def first(self) -> Any:
        return self.values[0] if self.values else None


# --- walking items ---------------------------------------------------------------------------------------


def _walk(parent: dict[str, Any], location: str, issues: _Issues) -> Iterator[tuple[dict[str, Any], str]]:
    """Every item below ``parent``, depth first, including items nested under answers (no recursion: a
    deeply nested response cannot exhaust the stack)."""
    stack = [(item, f"{location}.item[{i}]") for i, item in enumerate(_objects(parent, "item", location, issues))]
    stack.reverse()
    while stack:
        child, here = stack.pop()
        if child is None:
            continue
        yield child, here
        below = [(item, f"{here}.item[{i}]") for i, item in enumerate(_objects(child, "item", here, issues))]
        for k, answer in enumerate(_objects(child, "answer", here, issues)):
            if answer is not None:
                at = f"{here}.answer[{k}]"
                below += [(item, f"{at}.item[{i}]") for i, item in enumerate(_objects(answer, "item", at, issues))]
        stack.extend(reversed(below))


def _objects(parent: dict[str, Any], key: str, location: str, issues: _Issues) -> list[dict[str, Any] | None]:
    """``parent[key]`` as a list of objects (None in place of a non-object, which is reported)."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        issues.error("invalid", f"{key} must be a list", f"{location}.{key}")
        return []
    if all(isinstance(element, dict) for element in value):
        return value
    out: list[dict[str, Any] | None] = []
    for index, element in enumerate(value):
        if not isinstance(element, dict):
            issues.error("invalid", f"{key} must be an object", f"{location}.{key}[{index}]")
        out.append(element if isinstance(element, dict) else None)
    return out


Resolver = Callable[[dict[str, Any]], Question | None]


def _collect(qr: dict[str, Any], base: str, resolve: Resolver, strict: bool, issues: _Issues) -> dict[str, _Answered]:
    """Recognised items by linkId of our question; unknown items are errors when ``strict``."""
    found: dict[str, _Answered] = {}
    for item, location in _walk(qr, base, issues):
        link = item.get("linkId")
        if not isinstance(link, str) or not link:
            issues.error("required", "item has no linkId", location)
            continue
        question = resolve(item)
        if question is None:
            _unknown(item, link, location, strict, issues)
        elif question.link_id in found:
            first = found[question.link_id].location
            issues.error("invalid", f"item {question.link_id!r} appears more than once (first at {first})", location)
        else:
            given = len(item["answer"]) if isinstance(item.get("answer"), list) else 0
            values = _read_answers(question, item, location, issues)
            found[question.link_id] = _Answered(question, location, values, given)
    return found


def _unknown(item: dict[str, Any], link: str, location: str, strict: bool, issues: _Issues) -> None:
    if strict:
        issues.error("invalid", f"linkId {link!r} is not an item of this questionnaire", location)
    elif item.get("answer"):
        issues.warn(f"item {link!r} is not a STarT Back item; ignored", location)


# --- answers -----------------------------------------------------------------------------------------------


def _read_answers(question: Question, item: dict[str, Any], location: str, issues: _Issues) -> list[Any]:
    values = []
    for k, answer in enumerate(_objects(item, "answer", location, issues)):
        here = f"{location}.answer[{k}]"
        if k == 1 and not question.repeats:
            issues.error("invalid", f"{question.link_id!r} takes one answer; found more", here)
        value = _convert(question, answer, here, issues) if answer is not None else None
        if value is not None and value not in values:
            values.append(value)
    return values


def _value(answer: dict[str, Any]) -> tuple[str, Any] | None:
    """The answer's value[x] as (type name, value), e.g. ("Coding", {...})."""
    for key, v in answer.items():
        if key.startswith("value") and len(key) > 5:
            return key[5:], v
    return None


def _convert(question: Question, answer: dict[str, Any], location: str, issues: _Issues) -> Any:
    given = _value(answer)
    if given is None:
        issues.error("value", f"answer to {question.link_id!r} has no value", location)
        return None
    kind, value = given
    if kind not in _accepted(question):
        expected = " or ".join(f"value{k}" for k in _accepted(question))
        issues.error("value", f"answer to {question.link_id!r} must be {expected}, not value{kind}", location)
        return None
    converter = question.type
    converted: Any
    # The converters called by name (native calls, compiled), the table for any other type: the same function.
    if converter == "choice":
        converted = _choice(question, kind, value)
    elif converter == "boolean":
        converted = _boolean(question, kind, value)
    elif converter == "integer":
        converted = _integer(question, kind, value)
    else:
        converted = _CONVERTERS[converter](question, kind, value)
    if converted is None:
        issues.error("value", f"unknown answer {_shown(value)} to {question.link_id!r}{_expected(question)}", location)
    return converted


_ACCEPTED: dict[int, tuple[str, ...]] = {}


def _accepted(question: Question) -> tuple[str, ...]:
    """The value[x] types an answer to the question may have (kept per question: asked for every answer)."""
    known = _ACCEPTED.get(id(question))
    if known is not None:
        return known
    if question.type != "choice":
        accepted: tuple[str, ...] = (question.type.capitalize(),)
    else:
        # Items 1-8 of STarT Back are agree/disagree; engines often render them as yes/no booleans.
        agree = {o.code for o in question.options} == {"agree", "disagree"}
        accepted = ("Coding", "String", "Boolean") if agree else ("Coding", "String")
    _ACCEPTED[id(question)] = accepted  # questions are module-level constants: their ids are stable
    return accepted


def _boolean(question: Question, kind: str, value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _integer(question: Question, kind: str, value: Any) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    low, high = question.bounds or (value, value)
    return value if low <= value <= high else None


def _choice(question: Question, kind: str, value: Any) -> str | None:
    """The option code an answer means (a foreign engine may send words rather than our codes)."""
    if kind == "Boolean":
        return ("agree" if value else "disagree") if isinstance(value, bool) else None
    if kind == "String":
        return _by_words(question, value)
    if not isinstance(value, dict):
        return None
    same_system = [o for o in question.options if o.system == value.get("system")]
    if same_system:
        return next((o.code for o in same_system if o.code == value.get("code")), None)
    return _by_words(question, value.get("code")) or _by_words(question, value.get("display"))


def _by_words(question: Question, text: Any) -> str | None:
    """The first option whose code or display, as words (:func:`normalise_words`), are the text's words."""
    if not isinstance(text, str):
        return None
    return _option_words(question).get(_normalised(text))


#: ``normalise_words``' pattern, compiled once here (``re.sub`` with a pattern string looks it up in re's cache,
#: Python code, on every call); :func:`_normalised` gives what ``normalise_words`` gives (tests check it).
_WORD_SEPARATORS: Final = re.compile(r"[\s_-]+")


def _normalised(text: str) -> str:
    return _WORD_SEPARATORS.sub("-", text.strip().lower())


#: Each question's options by their words (code and display, normalised), the first option's code for words
#: two options share: the question's options are constants, so their words are worked out once per process
#: (keyed by the question's identity, the question kept with its table as in ``_QUESTION_TABLES``).
_OPTION_WORDS: Final[dict[int, tuple[Question, dict[str, str]]]] = {}


def _option_words(question: Question) -> dict[str, str]:
    entry = _OPTION_WORDS.get(id(question))
    if entry is None or entry[0] is not question:
        table: dict[str, str] = {}
        for option in question.options:
            table.setdefault(normalise_words(option.code), option.code)
            table.setdefault(normalise_words(option.display), option.code)
        entry = _OPTION_WORDS[id(question)] = (question, table)
    return entry[1]


def _date(question: Question, kind: str, value: Any) -> str | None:
    """A whole date (YYYY-MM-DD): a partial one cannot settle a duration the way the item is meant to."""
    return value if isinstance(value, str) and _DAY.fullmatch(value) else None


_CONVERTERS: Final[dict[str, Callable[[Question, str, Any], Any]]] = {
    "boolean": _boolean,
    "date": _date,
    "integer": _integer,
    "choice": _choice,
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return repr(value.get("code") or value.get("display"))
    return repr(value)


def _expected(question: Question) -> str:
    if question.options:
        return "; expected one of " + ", ".join(o.code for o in question.options)
    if question.bounds is not None:
        return f"; expected {question.bounds[0]} to {question.bounds[1]}"
    return ""


# --- the resource and its questionnaire ---------------------------------------------------------------------


def _canonical(qr: Any, base: str, issues: _Issues) -> str | None:
    if not isinstance(qr, dict) or qr.get("resourceType") != "QuestionnaireResponse":
        issues.error("invalid", "not a QuestionnaireResponse", base)
        issues.check()
    canonical = qr.get("questionnaire")
    if canonical is not None and not isinstance(canonical, str):
        issues.error("invalid", "questionnaire must be a canonical URL", f"{base}.questionnaire")
        return None
    return canonical


def _eligibility_form(qr: Any, base: str, issues: _Issues) -> Form:
    canonical = _canonical(qr, base, issues)
    form = form_for(canonical) if canonical else None
    if form is None or form not in ELIGIBILITY_FORMS.values():
        known = " or ".join(f.url for f in ELIGIBILITY_FORMS.values())
        if canonical is None:
            issues.error("required", f"questionnaire is missing; expected {known}", f"{base}.questionnaire")
        else:
            message = f"questionnaire {canonical!r} is not an ESCAPE-pain eligibility questionnaire ({known})"
            issues.error("not-supported", message, f"{base}.questionnaire")
        issues.check()
    assert form is not None  # issues.check() raised otherwise
    return form


# --- public --------------------------------------------------------------------------------------------------


def read_eligibility_response(qr: dict[str, Any], base: str = "QuestionnaireResponse") -> EligibilityFromResponse:
    """The pathway, sites, duration and eligibility answers of a knee/hip or back eligibility response.

    Raises MappingError listing every item or answer that cannot be mapped.
    """
    issues = _Issues()
    form = _eligibility_form(qr, base, issues)
    pathway = next(p for p, f in ELIGIBILITY_FORMS.items() if f is form)
    questions = _questions(form)
    found = _collect(qr, base, lambda item: questions.get(str(item.get("linkId"))), True, issues)
    issues.check()
    sites = found[LINK_SITES].values if LINK_SITES in found else []
    duration = found[LINK_DURATION].first() if LINK_DURATION in found else None
    onset = found[LINK_ONSET].first() if LINK_ONSET in found else None
    answers = {f: found[_LINK_OF_FIELD[f]].first() for f in PATHWAY_FIELDS[pathway] if _LINK_OF_FIELD[f] in found}
    return EligibilityFromResponse(
        pathway=pathway,
        affected_sites=[_SITE_OF_VALUE.get(s) or Site(s) for s in sites],
        symptom_duration_months=duration,
        symptom_onset_date=onset,
        answers=EligibilityAnswers(**answers),
        warnings=tuple(issues.warnings),
    )


def read_startback_response(qr: dict[str, Any], base: str = "QuestionnaireResponse") -> StartBackFromResponse:
    """The nine STarT Back answers and the score items of a response (ours or another engine's).

    Raises MappingError when an answer cannot be mapped, items are missing, or scores disagree.
    """
    issues = _Issues()
    strict = _startback_strict(qr, base, issues)
    found = _collect(qr, base, _exact_loinc if strict else _loinc_in_reference, strict, issues)
    answered = [c for c in ITEM_CODES if c in found and found[c].given]
    if answered and len(answered) < len(ITEM_CODES):
        for code in (c for c in ITEM_CODES if c not in answered):
            issues.error("required", f"STarT Back item {code} ({STARTBACK_TEXT[code]}) has no answer", base)
    values = {c: found[c].first() for c in answered if found[c].values}
    answers = values if len(values) == len(ITEM_CODES) else None
    result = _result(found, answers, base, issues)
    issues.check()
    return StartBackFromResponse(answers=answers, result=result, warnings=tuple(issues.warnings))


def _startback_strict(qr: Any, base: str, issues: _Issues) -> bool:
    """True for our STarT Back questionnaire; another engine's (or none) is read leniently."""
    canonical = _canonical(qr, base, issues)
    form = form_for(canonical) if canonical else None
    if form is not None and form is not STARTBACK_FORM:
        message = f"questionnaire {canonical!r} is not a STarT Back questionnaire"
        issues.error("not-supported", message, f"{base}.questionnaire")
        issues.check()
    return form is STARTBACK_FORM


def _exact_loinc(item: dict[str, Any]) -> Question | None:
    return _questions(STARTBACK_FORM).get(str(item.get("linkId")))


#: Each form's questions by linkId (``Form.question``'s table): a dict lookup from compiled code instead of a
#: call into the (interpreted) Form for every item.
#: Keyed by the form's identity (the form is kept with its table, so its id cannot be reused); a Form is
#: frozen, its questions a tuple.
_QUESTION_TABLES: Final[dict[int, tuple[Form, dict[str, Question]]]] = {}


def _questions(form: Form) -> dict[str, Question]:
    entry = _QUESTION_TABLES.get(id(form))
    if entry is None or entry[0] is not form:
        entry = _QUESTION_TABLES[id(form)] = (form, {q.link_id: q for q in form.questions})
    return entry[1]


def _loinc_in_reference(item: dict[str, Any]) -> Question | None:
    """Our question whose LOINC code the item's linkId or definition is, or ends in (e.g. ``.../91340-0``)."""
    for reference in (item.get("linkId"), item.get("definition")):
        if not isinstance(reference, str):
            continue
        for question in STARTBACK_FORM.questions:
            code = question.link_id
            if reference == code or (reference.endswith(code) and not reference[-len(code) - 1].isalnum()):
                return question
    return None


def _result(
    found: dict[str, _Answered], answers: dict[str, str] | None, base: str, issues: _Issues
) -> StartBackResult | None:
    total, psychosocial, risk = (found[c] if c in found and found[c].values else None for c in SCORE_CODES)
    if total is None and psychosocial is None and risk is None:
        if answers is None:
            issues.error("required", "no STarT Back answers or scores found", base)
        return None
    given_total = total.first() if total else None
    given_sub = psychosocial.first() if psychosocial else None
    if risk is not None:
        level = _RISK_BY_CODE[risk.first()]
    elif given_total is not None and given_sub is not None:
        level = risk_for(given_total, given_sub).value
    else:
        issues.warn("STarT Back scores without a risk level are ignored", base)
        return None
    before = len(issues.errors)
    _check_scores(answers, (total, psychosocial, risk), (given_total, given_sub, level), issues)
    if len(issues.errors) > before:
        return None  # the scores contradict each other: reported, not built (the result model refuses them)
    return StartBackResult(total=given_total, psychosocial=given_sub, risk=level)


def _check_scores(
    answers: dict[str, str] | None,
    items: tuple[_Answered | None, ...],
    given: tuple[int | None, int | None, str],
    issues: _Issues,
) -> None:
    """Given scores must match the answers, or (with no answers) each other (nhs-standards.md 4.2)."""
    if answers is not None:
        computed = score(answers)
        expected: tuple[object, ...] = (computed.total, computed.psychosocial, computed.risk.value)
        why = "the item answers"
    elif given[0] is not None and given[1] is not None:
        if given[1] > given[0] and items[1] is not None:
            message = f"subscore {given[1]} is more than the total {given[0]}"
            issues.error("value", message, f"{items[1].location}.answer[0]")
        expected, why = (given[0], given[1], risk_for(given[0], given[1]).value), "the total and subscore"
    else:
        return
    for name, item, value, wanted in zip(("total", "subscore", "risk"), items, given, expected, strict=True):
        if item is not None and value != wanted:
            message = f"{name} {value} does not match {why} ({wanted})"
            issues.error("value", message, f"{item.location}.answer[0]")
