"""Where each fact of a referral may be found in a sender's Bundle: one ordered table, one row per place.

``PLACES[fact]`` lists, best first, the places a sender may have put that fact. Each row has a label (shown
to a clinician by ``escape-fhir referral --explain`` and on the triage Task) and a small function that
returns what it finds there, each value with its exact FHIRPath location. Supporting a new sender's shape is
adding a row (and, for a new code, a row of :mod:`escape_fhir.fhir.sender_terms`).

How the values of the places are combined (first wins, union, conflicts flagged) is the reader's business
(:mod:`escape_fhir.fhir.readers`), the same for every sender.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from escape_fhir.domain.referral import SCTID
from escape_fhir.fhir import codes
from escape_fhir.fhir import sender_terms as terms
from escape_fhir.fhir.bundle_index import Node, objects
from escape_fhir.fhir.sender_context import Context, Found

#: A place's finder: what it finds, in order, as a list (a compiled generator costs more to step through than a
#: list costs to build).
Finder = Callable[[Context], list[Found]]

# The patterns of this module, compiled once (``re.fullmatch(text, ...)`` looks its pattern up in re's cache,
# Python code, on every call).
_QUALIFIER_VALUES: Final = re.compile(r"=\s*(\d+)")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH: Final = re.compile(r"\d{4}-\d{2}")
_YEAR: Final = re.compile(r"\d{4}")
_DATE_TEXT: Final = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_PERIOD: Final = re.compile(r"(\d{1,3})\s*(day|week|month|year)s?")


@dataclass(frozen=True)
class Place:
    label: str
    find: Finder


def codings(concept: Any) -> list[tuple[int, Json]]:
    listed = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(listed, list):
        return []
    return [(k, coding) for k, coding in enumerate(listed) if isinstance(coding, dict)]


Json = dict[str, Any]


def _snomed(concept: Any) -> list[tuple[int, str, str | None]]:
    out: list[tuple[int, str, str | None]] = []
    for k, coding in codings(concept):
        if coding.get("system") == codes.SNOMED and isinstance(coding.get("code"), str):
            display = coding.get("display")
            out.append((k, coding["code"], display if isinstance(display, str) else None))
    return out


def _text(concept: Any) -> str | None:
    text = concept.get("text") if isinstance(concept, dict) else None
    return text if isinstance(text, str) and text.strip() else None


# --- affected sites ------------------------------------------------------------------------------------


def _body_site(concept: Any, location: str) -> list[Found]:
    """Sites of a bodySite CodeableConcept: a body structure, with laterality as another coding, as a
    post-coordinated qualifier (``24136001:272741003=7771000``), or in the concept itself."""
    out: list[Found] = []
    sides: tuple[str, ...] | None = None
    coded = _snomed(concept)
    for _k, code, _display in coded:
        if code in terms.LATERALITY:
            sides = terms.LATERALITY[code]
    for k, code, _display in coded:
        structure, _, qualifier = code.partition(":")
        if structure not in terms.BODY_STRUCTURES:
            continue
        joint, side = terms.BODY_STRUCTURES[structure]
        side_codes = _QUALIFIER_VALUES.findall(qualifier)
        named = tuple(s for c in side_codes for s in terms.LATERALITY.get(c, ()))
        chosen = (side,) if side else (named or sides)
        out.append(Found(terms.sites_of(joint, chosen), f"{location}.coding[{k}]"))
    return out


def sites_in_eligibility_answers(ctx: Context) -> list[Found]:
    answers = ctx.eligibility
    if answers is not None and answers.sites:
        return [Found(answers.sites, answers.sites_location)]
    return []


def sites_in_condition_body_site(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for node in ctx.conditions:
        for k, concept in node.items("bodySite"):
            out += _body_site(concept, f"{node.location}.bodySite[{k}]")
    return out


def sites_in_request_body_site(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for k, concept in ctx.sr.items("bodySite"):
        out += _body_site(concept, f"{ctx.sr.location}.bodySite[{k}]")
    return out


def _diagnosis_concepts(ctx: Context) -> list[tuple[Node, str, Json]]:
    """Every diagnosis concept of the referral: each Condition.code, then each ServiceRequest.reasonCode."""
    out: list[tuple[Node, str, Json]] = []
    for node in ctx.conditions:
        concept = node.get("code")
        if isinstance(concept, dict):
            out.append((node, node.at("code"), concept))
    for k, concept in ctx.sr.items("reasonCode"):
        out.append((ctx.sr, f"{ctx.sr.location}.reasonCode[{k}]", concept))
    return out


def sites_in_diagnosis_code(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for _node, location, concept in _diagnosis_concepts(ctx):
        for k, code, display in _snomed(concept):
            joint = terms.DIAGNOSIS_JOINTS.get(code)
            if joint is None:
                continue
            # "Osteoarthritis of right knee" as a display of the generic code still tells the side.
            named = [s for s in terms.sites_in_text(display or "") if s.endswith(joint)]
            out.append(Found(named or terms.sites_of(joint, None), f"{location}.coding[{k}]"))
    return out


def _texts(ctx: Context) -> list[tuple[str, str]]:
    """The referral's free texts that may name a site, with their locations."""
    out: list[tuple[str, str]] = []
    for node in ctx.conditions:
        if (text := _text(node.get("code"))) is not None:
            out.append((node.at("code.text"), text))
        for k, concept in node.items("bodySite"):
            if (text := _text(concept)) is not None:
                out.append((f"{node.location}.bodySite[{k}].text", text))
    for key in ("reasonCode", "bodySite"):
        for k, concept in ctx.sr.items(key):
            if (text := _text(concept)) is not None:
                out.append((f"{ctx.sr.location}.{key}[{k}].text", text))
    if (text := _text(ctx.sr.get("code"))) is not None:
        out.append((ctx.sr.at("code.text"), text))
    for k, note in ctx.sr.items("note"):
        if isinstance(note.get("text"), str):
            out.append((f"{ctx.sr.location}.note[{k}].text", note["text"]))
    return out


def sites_in_text(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for location, text in _texts(ctx):
        found = terms.sites_in_text(text)
        # "ESCAPE-pain for knees and hips" names the programme, not the patient's joints (looked for only in a
        # text that names a joint: the case-blind pattern is the slower test).
        if found and terms.programme_in(text) is None:
            out.append(Found(found, location))
    return out


# --- diagnoses ----------------------------------------------------------------------------------------------


def diagnoses_coded(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for _node, location, concept in _diagnosis_concepts(ctx):
        for k, code, display in _snomed(concept):
            if SCTID.fullmatch(code):
                value: Json = {"code": code, "display": display} if display else {"code": code}
                out.append(Found(value, f"{location}.coding[{k}]"))
    return out


# --- pathway ----------------------------------------------------------------------------------------------------


def pathway_from_programme_code(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for k, coding in codings(ctx.sr.get("code")):
        code = coding.get("code")
        if coding.get("system") == codes.CS_PROGRAMME and isinstance(code, str) and code in codes.PROGRAMME_DISPLAY:
            out.append(Found(coding["code"], f"{ctx.sr.location}.code.coding[{k}]"))
    return out


def pathway_from_eligibility_answers(ctx: Context) -> list[Found]:
    if ctx.eligibility is not None:
        return [Found(ctx.eligibility.pathway, ctx.eligibility.location)]
    return []


def pathway_from_startback(ctx: Context) -> list[Found]:
    if ctx.startback_location is not None:
        return [Found("back", ctx.startback_location)]
    return []


def _programme_texts(ctx: Context) -> list[tuple[str, str]]:
    """Texts that may name the programme: the request's code and category, the service it is sent to."""
    out: list[tuple[str, str]] = []
    concept = ctx.sr.get("code")
    if (text := _text(concept)) is not None:
        out.append((ctx.sr.at("code.text"), text))
    for k, coding in codings(concept):
        if isinstance(coding.get("display"), str):
            out.append((f"{ctx.sr.location}.code.coding[{k}].display", coding["display"]))
    for k, concept in ctx.sr.items("category"):
        if (text := _text(concept)) is not None:
            out.append((f"{ctx.sr.location}.category[{k}].text", text))
    for k, performer in ctx.sr.items("performer"):
        node = ctx.resolve(performer)
        if node is not None and isinstance(node.get("name"), str):
            out.append((node.at("name"), node.get("name")))
        elif isinstance(performer.get("display"), str):
            out.append((f"{ctx.sr.location}.performer[{k}].display", performer["display"]))
    for k, note in ctx.sr.items("note"):
        if isinstance(note.get("text"), str):
            out.append((f"{ctx.sr.location}.note[{k}].text", note["text"]))
    if ctx.header is not None:
        for k, dest in ctx.header.items("destination"):
            if isinstance(dest.get("name"), str):
                out.append((f"{ctx.header.location}.destination[{k}].name", dest["name"]))
    return out


def programme_named(ctx: Context) -> list[Found]:
    """Places that name ESCAPE-pain (by code or in words): they make a Bundle an ESCAPE-pain referral."""
    out = pathway_from_programme_code(ctx)
    for location, text in _programme_texts(ctx):
        if terms.programme_in(text) is not None:
            out.append(Found(text, location))
    return out


def pathway_from_programme_text(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for location, text in _programme_texts(ctx):
        match = terms.programme_in(text)
        if match is None:
            continue
        pathways = terms.pathways_in_text(text[match.end() :]) or terms.pathways_in_text(text)
        if len(pathways) == 1:
            out.append(Found(next(iter(pathways)), location))
    return out


def pathway_from_diagnoses(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for found in ctx.found.get("diagnoses", []):
        pathway = terms.PATHWAY_OF_DIAGNOSIS.get(found.value["code"])
        if pathway is not None:
            out.append(Found(pathway, found.location))
    return out


def pathway_from_sites(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for found in ctx.found.get("affectedSites", []):
        kinds = {"back" if s == "lower-back" else "knee-hip" for s in found.value}
        if len(kinds) == 1:
            out.append(Found(next(iter(kinds)), found.location))
    return out


# --- symptom duration ----------------------------------------------------------------------------------------


def months_in_eligibility_answers(ctx: Context) -> list[Found]:
    answers = ctx.eligibility
    if answers is not None and answers.months is not None:
        return [Found(answers.months, answers.months_location)]
    return []


def _main_conditions(ctx: Context) -> list[Node]:
    """The Conditions the referral is for: its reasons and the programme's diagnoses (not a comorbidity).
    Worked out once per Bundle (two places ask; the request and the Conditions do not change as it is read)."""
    if ctx.main_conditions is not None:
        return ctx.main_conditions
    reasons = {id(n) for r in objects(ctx.sr.get("reasonReference")) if (n := ctx.resolve(r)) is not None}
    main = [
        n
        for n in ctx.conditions
        if id(n) in reasons or any(code in terms.PATHWAY_OF_DIAGNOSIS for _k, code, _d in _snomed(n.get("code")))
    ]
    ctx.main_conditions = main or (ctx.conditions if len(ctx.conditions) == 1 else [])
    return ctx.main_conditions


_PERIOD_WORDS: Final = {"day": 1 / 30.4375, "week": 7 / 30.4375, "month": 1.0, "year": 12.0}
#: ``int | float | Decimal`` as a tuple: in compiled code ``isinstance(v, int | float | Decimal)`` builds the
#: union on every call.
_NUMBER_TYPES: Final = (int, float, Decimal)
_UCUM_AGE: Final = {"a": 12.0, "mo": 1.0, "wk": 7 / 30.4375, "d": 1 / 30.4375}


def day_range(partial: str) -> tuple[date, date] | None:
    """The first and last day a FHIR date or dateTime may mean ("2025-03" -> 1 to 31 March 2025)."""
    try:
        if _DAY.fullmatch(partial[:10]):
            day = date.fromisoformat(partial[:10])
            return day, day
        if _MONTH.fullmatch(partial):
            first = date(int(partial[:4]), int(partial[5:7]), 1)
            return first, (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if _YEAR.fullmatch(partial):
            return date(int(partial), 1, 1), date(int(partial), 12, 31)
    except ValueError:
        return None
    return None


def onset_in_eligibility_answers(ctx: Context) -> list[Found]:
    answers = ctx.eligibility
    if answers is not None and answers.onset is not None and (days := day_range(answers.onset)) is not None:
        return [Found(days, answers.onset_location)]
    return []


def onset_dates(ctx: Context) -> list[Found]:
    """When the symptoms began, as the range of days it may mean: Condition.onsetDateTime, onsetPeriod.start,
    a date written in onsetString, and onsetAge on the patient's birth date."""
    out: list[Found] = []
    birth = ctx.patient.get("birthDate") if ctx.patient is not None else None
    for node in _main_conditions(ctx):
        period = node.get("onsetPeriod")
        text = node.get("onsetString")
        for element, value in (
            ("onsetDateTime", node.get("onsetDateTime")),
            ("onsetPeriod.start", period.get("start") if isinstance(period, dict) else None),
            # A date written as text ("2025-03"); words go to months_in_onset_text.
            ("onsetString", text if isinstance(text, str) and _DATE_TEXT.fullmatch(text) else None),
        ):
            if isinstance(value, str) and (days := day_range(value)) is not None:
                out.append(Found(days, node.at(element)))
        age = node.get("onsetAge")
        born = day_range(birth) if isinstance(birth, str) else None
        if isinstance(age, dict) and born is not None and (days := _onset_from_age(age, born[0])) is not None:
            out.append(Found(days, node.at("onsetAge")))
    return out


def _onset_from_age(age: Json, born: date) -> tuple[date, date] | None:
    """Onset at an age: from the day the person reached that age to the day before the next (in the unit)."""
    value, unit = age.get("value"), age.get("code") or age.get("unit")
    # JSON and XML decimals arrive as Decimal (kept as written), JSON integers as int.
    if not isinstance(value, _NUMBER_TYPES) or isinstance(value, bool) or not 0 <= value <= 150:
        return None
    value = float(value)
    months = _UCUM_AGE.get(str(unit))
    if months is None:
        return None
    try:
        start = born + timedelta(days=int(value * months * 30.4375))
        return start, start + timedelta(days=max(int(months * 30.4375) - 1, 0))
    except OverflowError:
        return None


def months_in_onset_text(ctx: Context) -> list[Found]:
    """Condition.onsetString such as "6 months", "over 2 years", "for 10 weeks": whole months."""
    out: list[Found] = []
    for node in _main_conditions(ctx):
        text = node.get("onsetString")
        if not isinstance(text, str):
            continue
        match = _PERIOD.search(text.lower())
        if match:
            out.append(Found(int(int(match.group(1)) * _PERIOD_WORDS[match.group(2)]), node.at("onsetString")))
    return out


# --- source of referral -------------------------------------------------------------------------------------


def source_from_our_extension(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for k, ext in ctx.sr.items("extension"):
        if ext.get("url") == codes.EXT_REFERRAL_SOURCE and isinstance(ext.get("valueCoding"), dict):
            out.append(Found(ext["valueCoding"].get("code"), f"{ctx.sr.location}.extension[{k}].valueCoding"))
    return out


UKCORE_SOURCE_EXTENSION: Final = f"{codes.UKCORE}/Extension-UKCore-SourceOfServiceRequest"


def source_from_ukcore_extension(ctx: Context) -> list[Found]:
    out: list[Found] = []
    for k, ext in ctx.sr.items("extension"):
        if ext.get("url") != UKCORE_SOURCE_EXTENSION:
            continue
        concept = ext.get("valueCodeableConcept")
        for c, code, display in _snomed(concept):
            source = terms.source_of(code, display)
            if source is not None:
                out.append(Found(source, f"{ctx.sr.location}.extension[{k}].valueCodeableConcept.coding[{c}]"))
        text = _text(concept)
        if text and terms.source_of(None, text):
            out.append(
                Found(terms.source_of(None, text), f"{ctx.sr.location}.extension[{k}].valueCodeableConcept.text")
            )
    return out


def source_from_requester(ctx: Context) -> list[Found]:
    """Self-referral when the requester is the patient; else the source the referrer's role implies."""
    requester = ctx.found.get("requester")
    if not requester:
        return []
    kind, location = requester[0].value, requester[0].location
    if kind == "self":
        return [Found("self-referral", location)]
    out: list[Found] = []
    for found in ctx.found.get("referrer.role", []):
        if found.value in terms.SOURCE_OF_ROLE:
            out.append(Found(terms.SOURCE_OF_ROLE[found.value], found.location))
    return out


#: Each fact, the places it may be found, best first.
PLACES: Final[dict[str, tuple[Place, ...]]] = {
    "diagnoses": (Place("a SNOMED CT code of a Condition or of ServiceRequest.reasonCode", diagnoses_coded),),
    "affectedSites": (
        Place("the eligibility answers", sites_in_eligibility_answers),
        Place("Condition.bodySite", sites_in_condition_body_site),
        Place("ServiceRequest.bodySite", sites_in_request_body_site),
        Place("the diagnosis code", sites_in_diagnosis_code),
        Place("free text", sites_in_text),
    ),
    "pathway": (
        Place("the ESCAPE-pain programme code", pathway_from_programme_code),
        Place("the eligibility questionnaire answered", pathway_from_eligibility_answers),
        Place("STarT Back screening (backs only)", pathway_from_startback),
        Place("the programme named in text", pathway_from_programme_text),
        Place("the diagnosis code", pathway_from_diagnoses),
        Place("the affected site", pathway_from_sites),
    ),
    "symptomDurationMonths": (
        Place("the eligibility answers", months_in_eligibility_answers),
        Place("Condition.onsetString", months_in_onset_text),
    ),
    "symptomOnsetDate": (
        Place("the eligibility answers", onset_in_eligibility_answers),
        Place("Condition.onset[x]", onset_dates),
    ),
    "source": (
        Place("the ESCAPE-pain referral-source extension", source_from_our_extension),
        Place("UK Core source of service request", source_from_ukcore_extension),
        Place("the requester", source_from_requester),
    ),
}
