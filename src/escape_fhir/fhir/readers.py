"""FHIR Bundle -> referral: the way back, for our own Bundles and for every sender's shape (issue 8).

Accepted: ``message`` (the MessageHeader's focus is the ServiceRequest), ``transaction`` and ``collection``
Bundles, JSON or XML. Each fact is looked for in the places :data:`~escape_fhir.fhir.sender_places.PLACES`
lists for it, best first; every value read is recorded with its FHIRPath location (:class:`Provenance`), so
that a clinician can see why the adapter believes what it does (``escape-fhir referral --explain``, the
triage Task).

Refusal (MappingError, 422 at the endpoint) is only for what is not a referral or not ours to read: no
ServiceRequest, no patient, nothing that makes it an ESCAPE-pain referral, dates that cannot be true.
Clinical detail that is missing, unclear or contradictory never refuses a referral: it becomes a
:class:`~escape_fhir.domain.eligibility.ReviewFlag` on the criterion it concerns (the criterion is then
``unknown`` and the decision ``needs-review``), with a reason saying what was looked for and where. Nothing
present is dropped silently: what is not understood is a warning (in the acknowledgement) and a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any, Final, NamedTuple, cast

from escape_fhir.domain import (
    PATHWAY_CRITERIA,
    Criterion,
    EligibilityResult,
    Outcome,
    RedFlag,
    Referral,
    ReviewFlag,
    assess,
    load_referral,
)
from escape_fhir.domain.durations import calendar_months
from escape_fhir.domain.eligibility import MIN_DURATION_MONTHS
from escape_fhir.domain.referral import FHIR_ID, Site, answers_json
from escape_fhir.errors import Issue, MappingError, ReferralInputError
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundle_index import Json, Node, objects
from escape_fhir.fhir.qr_read import read_eligibility_response
from escape_fhir.fhir.sender_context import Context, EligibilityRead, Found, Recorder
from escape_fhir.fhir.sender_people import find_identifier, read_patient, read_receiver, read_requester
from escape_fhir.fhir.sender_places import PLACES, Place, programme_named
from escape_fhir.fhir.sender_startback import find_startback, score_of

#: The criterion a referral field bears on: a field that cannot be used flags it for review.
CRITERION_OF_FIELD: Final = {
    "patient.birthDate": "age",
    "affectedSites": "site",
    "symptomDurationMonths": "duration",
    "symptomOnsetDate": "duration",
    "diagnoses": "diagnosis",
    "startBack": "startback",
    "startBackResult": "startback",
    "eligibility.independentlyMobile": "mobility",
    "eligibility.contraindicationsToExercise": "contraindications",
    "eligibility.clinicalDiagnosisOfOsteoarthritis": "diagnosis",
    "eligibility.nonSpecificLowBackPain": "diagnosis",
    "eligibility.needsSupervisedExercise": "supervised-exercise",
    "eligibility.recurrentEpisodes": "duration",
    "eligibility.radicularPain": "diagnosis",
    "eligibility.ableToJoinGroup": "group",
    "eligibility.wouldBenefitFromGroup": "benefit",
    "eligibility.wishesToTakePart": "startback",
}
#: Fields whose error refuses the referral: identity and dates that cannot be true are not clinical detail.
FATAL_FIELDS: Final = ("referralDate", "pathway", "patient.nhsNumber", "patient.birthDate", "source", "referral", "")
SITE_WORDS: Final = {s: s.value.replace("-", " ") for s in Site}
SIDELESS: Final = frozenset({Site.KNEE, Site.HIP})
_LOWER_BACK: Final = Site.LOWER_BACK
#: The first places of PLACES["pathway"] state the programme; the others only suggest it.
STATED_PATHWAY_PLACES: Final = 3
_DATED: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_RESOURCE_LOCATION: Final = re.compile(r"Bundle\.entry\[\d+\]\.resource(\.contained\[\d+\])?")


#: ``tuple.__new__``: makes a NamedTuple from its fields without calling the class, whose ``__new__`` is a
#: Python function (interpreted, even from compiled code); the object made is the same.
NEW_TUPLE: Final[Callable[..., Any]] = tuple.__new__


class Provenance(NamedTuple):
    """One fact read, shown as a clinician would say it, and where in the Bundle it came from."""

    field: str
    raw: Any
    location: str
    place: str = ""

    @property
    def value(self) -> str:
        return _shown(self.raw)

    def line(self) -> str:
        via = f" ({self.place})" if self.place else ""
        return f"{self.field}: {self.value} <- {self.location}{via}"


@dataclass
class ReadResult:
    referral: Referral
    warnings: list[Issue] = field(default_factory=list)
    provenance: list[Provenance] = field(default_factory=list)
    #: Criteria a clinician must look at, and why (missing, unclear, contradictory or not understood).
    flags: list[ReviewFlag] = field(default_factory=list)

    def where(self) -> dict[str, str]:
        """Referral field path -> FHIR location (first found), for reasons that name where a fact came from."""
        return first_locations(self.provenance)


def first_locations(provenance: list[Provenance]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in provenance:
        out.setdefault(p.field, p.location)
    return out


_ANSWERS: Final = "the eligibility answers (a QuestionnaireResponse to an ESCAPE-pain eligibility questionnaire)"
#: For a criterion left unknown because its facts were not found: the facts, and where they were looked for.
LOOKED_FOR: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "age": (("patient.birthDate",), "Patient.birthDate"),
    "site": (("affectedSites",), ", ".join(p.label for p in PLACES["affectedSites"])),
    "duration": (
        ("symptomDurationMonths", "symptomOnsetDate", "eligibility.recurrentEpisodes"),
        f"{_ANSWERS}, and Condition.onset[x] (dateTime, Period, Age or string) of the referral's Conditions",
    ),
    "diagnosis": (
        ("diagnoses", "eligibility.clinicalDiagnosisOfOsteoarthritis", "eligibility.nonSpecificLowBackPain"),
        f"SNOMED CT codes of every Condition and of ServiceRequest.reasonCode, and {_ANSWERS}",
    ),
    "startback": (
        ("startBack", "startBackResult"),
        "QuestionnaireResponses (LOINC item codes as linkIds or on the Questionnaire's item.code), a STarT Back "
        "panel Observation (91349-1), score Observations (91351-7, 91350-9, 91352-5)",
    ),
    **{
        criterion: ((f"eligibility.{answer}",), _ANSWERS)
        for criterion, answer in (
            ("mobility", "independentlyMobile"),
            ("contraindications", "contraindicationsToExercise"),
            ("supervised-exercise", "needsSupervisedExercise"),
            ("group", "ableToJoinGroup"),
            ("benefit", "wouldBenefitFromGroup"),
        )
    },
}


def assess_read(read: ReadResult, red_flags: Mapping[str, RedFlag] | None = None) -> EligibilityResult:
    """The eligibility of a referral read from a Bundle: its flags applied (those of the other pathway's
    criteria are left to the warnings), red flags named where they were found, and each criterion left
    unknown for want of a fact saying where that fact was looked for (issue 8)."""
    assessed = PATHWAY_CRITERIA[read.referral.pathway]
    flags = [f for f in read.flags if f.criterion in assessed]
    result = assess(read.referral, flags, red_flags=red_flags, where=read.where())
    data = read.referral.to_json_dict()
    criteria = []
    for c in result.criteria:
        facts, places = LOOKED_FOR.get(c.code, ((), ""))
        if c.outcome is Outcome.UNKNOWN and facts and not any(_has(data, f) for f in facts):
            c = Criterion(c.code, c.title, c.outcome, f"{c.reason} (looked in {places})")
        criteria.append(c)
    return EligibilityResult(result.pathway, result.decision, tuple(criteria))


def _has(data: Json, path: str) -> bool:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value not in (None, [], {})


class _Reading(Recorder):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.out: Json = {}
        self.provenance: list[Provenance] = []
        self.flags: list[ReviewFlag] = []

    def record(self, field_path: str, value: Any, location: str, place: str = "") -> None:
        # Provenance(...) made the cheap way (NEW_TUPLE): the same object, and the reader makes many.
        self.provenance.append(cast(Provenance, NEW_TUPLE(Provenance, (field_path, value, location, place))))

    def flag(self, criterion: str, reason: str) -> None:
        if all(f.reason != reason for f in self.flags):
            self.flags.append(ReviewFlag(criterion, reason))

    def run(self) -> None:
        ctx, out = self.ctx, self.out
        self._identity()
        ctx.eligibility = _eligibility(ctx, self)
        self._startback()
        self._diagnoses()
        sites = self._collect("affectedSites", PLACES["affectedSites"][:-1])
        if all(s in SIDELESS for f in sites for s in f.value):  # none, or no side: free text may tell it
            sites += self._collect("affectedSites", PLACES["affectedSites"][-1:])
            self.ctx.found["affectedSites"] = sites
        self._pathway()
        self._sites(sites)
        self._duration()
        patient = read_patient(ctx, self)
        out["patient"] = patient
        kind, referrer = read_requester(ctx, self)
        ctx.found["requester"] = [Found(kind, ctx.sr.at("requester"))]
        roles = [p for p in self.provenance if p.field == "referrer.role"]
        ctx.found["referrer.role"] = [Found(referrer["role"], roles[-1].location)] if referrer and roles else []
        self._source(kind, referrer)
        if (receiver := read_receiver(ctx, self)) is not None:
            out["receiver"] = receiver
        notes = [str(n["text"]) for _k, n in ctx.sr.items("note") if isinstance(n.get("text"), str) and n["text"]]
        if notes:
            out["notes"] = "\n".join(notes)
        self._answers()
        self._not_understood()

    # --- one fact each -----------------------------------------------------------------------------------
    def _collect(self, fact: str, places: tuple[Place, ...] | None = None) -> list[Found]:
        found: list[Found] = []
        for place in PLACES[fact] if places is None else places:
            found += _labelled(place.find(self.ctx), place.label)
        self.ctx.found[fact] = found
        return found

    def _identity(self) -> None:
        sr, out = self.ctx.sr, self.out
        ident = find_identifier(sr.resource, codes.ID_REFERRAL)
        if ident is None:
            # Another sender's own referral number (an e-RS UBRN, an engine's id) when it can be a FHIR id.
            ident = next(
                (
                    (k, i["value"])
                    for k, i in sr.items("identifier")
                    if isinstance(i.get("value"), str) and FHIR_ID.fullmatch(i["value"])
                ),
                None,
            )
        if ident is not None:
            out["id"] = ident[1]
            self.record("id", ident[1], f"{sr.location}.identifier[{ident[0]}].value")
        for location, value in (
            (sr.at("authoredOn"), sr.get("authoredOn")),
            ("Bundle.timestamp", self.ctx.bundle.get("timestamp")),
            (
                sr.at("meta.lastUpdated"),
                sr.get("meta", {}).get("lastUpdated") if isinstance(sr.get("meta"), dict) else None,
            ),
        ):
            if isinstance(value, str) and _DATED.match(value):
                out["referralDate"] = value[:10]
                self.record("referralDate", value[:10], location)
                if location != sr.at("authoredOn"):
                    self.ctx.warn(sr.at("authoredOn"), f"no authoredOn: the referral is dated from {location}")
                return

    def _startback(self) -> None:
        got = find_startback(self.ctx)
        for problem in got.problems:
            self.flag("startback", problem[0].upper() + problem[1:])
        if not got.readings:
            return
        chosen = got.readings[0]
        self.ctx.startback_location = chosen.location
        scores = [score_of(r) for r in got.readings]  # each reading scored once (scoring is the costly part)
        risks = {score[0]: r for score, r in zip(scores, got.readings, strict=True)}
        if len(risks) > 1:
            # Two screenings that disagree: neither is taken; the clinician sees both (issue 8, conflicts).
            shown = "; ".join(f"{risk} risk at {r.location} ({r.place})" for risk, r in risks.items())
            self.flag("startback", f"the STarT Back results disagree: {shown}; neither is used")
            for (risk, total, sub), r in zip(scores, got.readings, strict=True):
                self.record("startBack", f"{risk} risk (total {total}, psychosocial {sub})", r.location, r.place)
            return
        key = "startBack" if "answers" in chosen.value else "startBackResult"
        self.out[key] = chosen.value.get("answers") or chosen.value.get("result")
        risk, total, sub = scores[0]
        self.record("startBack", f"{risk} risk (total {total}, psychosocial {sub})", chosen.location, chosen.place)

    def _diagnoses(self) -> None:
        seen: dict[str, Found] = {}
        for found in self._collect("diagnoses"):
            seen.setdefault(found.value["code"], found)
        if seen:
            self.out["diagnoses"] = [f.value for f in seen.values()]
            for i, f in enumerate(seen.values()):
                self.record(f"diagnoses[{i}]", f"{f.value['code']} {f.value.get('display', '')}".strip(), f.location)

    def _pathway(self) -> None:
        # The places that state the programme (its code, its questionnaire, STarT Back) are all read, so that
        # they can be checked against each other; the places that only suggest it are read until one does.
        found = self._collect("pathway", PLACES["pathway"][:STATED_PATHWAY_PLACES])
        for place in PLACES["pathway"][STATED_PATHWAY_PLACES:]:
            if found:
                break
            found = _labelled(place.find(self.ctx), place.label)
        if not found:
            named = programme_named(self.ctx)
            where = f"; ESCAPE-pain is named at {named[0].location} but" if named else ";"
            raise MappingError(
                [
                    Issue(
                        "error",
                        "not-supported",
                        "not an ESCAPE-pain referral"
                        + where
                        + " no programme code, eligibility questionnaire, STarT Back screening, knee/hip "
                        "osteoarthritis or low back pain diagnosis, affected site or programme name tells the "
                        "pathway (knees/hips or backs)",
                        self.ctx.sr.at("code"),
                    )
                ]
            )
        chosen = found[0]
        self.out["pathway"] = chosen.value
        self.record("pathway", chosen.value, chosen.location, chosen.place)
        others = [f for f in found if f.value != chosen.value]
        if others:
            self.flag(
                "site",
                f"the referral is read as {chosen.value} ({chosen.place}, {chosen.location}) but "
                f"{others[0].place} at {others[0].location} says {others[0].value}: check which programme",
            )

    def _sites(self, found: list[Found]) -> None:
        pathway = self.out["pathway"]
        coded = [f for f in found if f.place != "free text"]
        # Free text counts when nothing is coded, or to tell the side of a coded joint; it never contradicts.
        coded += [
            f for f in found if f.place == "free text" and (not coded or any(_overlap(f.value, c.value) for c in coded))
        ]
        kept: list[Found] = []
        for f in coded:
            on = [s for s in f.value if (s is _LOWER_BACK) == (pathway == "back")]
            off = [s for s in f.value if s not in on]
            if off:
                what = ", ".join(SITE_WORDS[s] for s in off)
                self.flag("site", f"{f.place} at {f.location} names the {what}, not on the {pathway} pathway")
            if on:
                kept.append(Found(on, f.location, f.place))
        # One resource naming several sites (both knees as two bodySites) states them all: sources are compared
        # resource by resource and place by place.
        sources: dict[tuple[str, str], list[Site]] = {}
        for f in kept:
            listed = sources.setdefault((f.place, _resource_of(f.location)), [])
            listed += [s for s in f.value if s not in listed]
        named = list(sources.items())
        for (a_place, a_where), a in named:
            for (b_place, b_where), b in named[named.index(((a_place, a_where), a)) + 1 :]:
                if _overlap(a, b):
                    continue
                text = (
                    f"the sources disagree on the affected site: {_words(a)} ({a_place}, {a_where}) "
                    f"but {_words(b)} ({b_place}, {b_where}); both kept"
                )
                self.flag("site", text)
                if pathway == "knee-hip":
                    self.flag("diagnosis", f"{text}, so which joint the diagnosis is about is not clear")
        sites: list[Site] = []
        for f in kept:
            for s in f.value:
                if s not in sites:
                    sites.append(s)
                self.record("affectedSites", SITE_WORDS[s], f.location, f.place)
        # A Site is a str whose text is its value: str methods on it, not ``.value`` (an Enum property, slow).
        sided = {s.split("-")[-1] for s in sites if "-" in s and s is not _LOWER_BACK}
        sites = [s for s in sites if str(s) not in sided]
        if sites:
            self.out["affectedSites"] = [str(s) for s in sites]
        # Else the site criterion is unknown, and says where it was looked for (LOOKED_FOR): a referral to the
        # backs programme that names no back problem is not taken to have one.

    def _duration(self) -> None:
        months = self._collect("symptomDurationMonths")
        onsets = self._collect("symptomOnsetDate")
        if months:
            self.out["symptomDurationMonths"] = months[0].value
            self.record("symptomDurationMonths", f"{months[0].value} months", months[0].location, months[0].place)
        chosen = [day for f in onsets if (day := self._onset_day(f)) is not None]
        if chosen:
            latest = max(chosen)
            self.out["symptomOnsetDate"] = latest[0]
            self.record(
                "symptomOnsetDate", latest[0], latest[1], next(f.place for f in onsets if f.location == latest[1])
            )
            if len({day for day, _ in chosen}) > 1:
                shown = ", ".join(f"{day} ({where})" for day, where in chosen)
                self.flag("duration", f"the onset dates disagree: {shown}; the latest is used")

    def _onset_day(self, found: Found) -> tuple[str, str] | None:
        """One day that stands for an onset given as a range of days (a month, a year, an age), when every
        day of the range gives the same duration verdict; else None, and the criterion is flagged."""
        referred = _date(self.out.get("referralDate"))
        first, last = found.value
        if referred is None:
            return first.isoformat(), found.location
        if first > referred:
            self.flag("duration", f"the onset at {found.location} ({first}) is after the referral date {referred}")
            return None
        last = min(last, referred)
        strictly_more = self.out["pathway"] == "back"
        verdicts = {
            _long_enough(day, referred, strictly_more) for day in ((first,) if first == last else (first, last))
        }
        if len(verdicts) > 1:
            self.flag(
                "duration",
                f"the onset at {found.location} may be any day from {first} to {last}: "
                "that range cannot tell whether the symptoms have lasted long enough",
            )
            return None
        # Both ends agree: the latest day when long enough, the earliest when not (either way, the same verdict).
        return (last if verdicts == {True} else first).isoformat(), found.location

    def _source(self, kind: str, referrer: Json | None) -> None:
        found = self._collect("source")
        chosen = found[0] if found else None
        self.out["source"] = chosen.value if chosen else ("self-referral" if kind == "self" else "other")
        if chosen:
            self.record("source", chosen.value, chosen.location, chosen.place)
        if referrer is not None and self.out["source"] != "self-referral":
            self.out["referrer"] = referrer
        elif self.out["source"] != "self-referral":
            self.out["referrer"] = {"role": "other"}
            self.ctx.warn(self.ctx.sr.at("requester"), "the referral names no referrer")

    def _answers(self) -> None:
        read = self.ctx.eligibility
        if read is None:
            return
        if read.pathway != self.out["pathway"]:
            self.flag(
                "site",
                f"the eligibility answers at {read.location} are for {read.pathway}, the referral for "
                f"{self.out['pathway']}: the answers are not used",
            )
            return
        self.out["eligibility"] = read.answers
        for key, value in read.answers.items():
            self.record(f"eligibility.{key}", "yes" if value else "no", read.answer_locations[key])

    def _not_understood(self) -> None:
        """Every QuestionnaireResponse, Observation and Questionnaire that no fact was read from."""
        ctx = self.ctx
        for node in ctx.responses + ctx.observations + ctx.questionnaires:
            if node.location in ctx.used or _ours(node):
                continue
            what = _describe(node)
            ctx.warn(node.location, f"{what} was not understood: not used")
            if node.type == "QuestionnaireResponse" or "STarT" in what:
                criterion = "startback" if self.out["pathway"] == "back" else "diagnosis"
                self.flag(criterion, f"{what} at {node.location} was not understood")


def _labelled(found: list[Found], label: str) -> list[Found]:
    """What a place found, each value labelled with the place (a finder makes new Found objects, each found
    once: labelled where they are, not copied)."""
    for f in found:
        f.place = label
    return found


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _long_enough(onset: date, referred: date, strictly_more: bool) -> bool:
    """The duration rule of the domain (calendar months from onset to referral) for one onset day."""
    months, days = calendar_months(onset, referred)
    if strictly_more:
        return months > MIN_DURATION_MONTHS or (months == MIN_DURATION_MONTHS and days > 0)
    return months >= MIN_DURATION_MONTHS


def _resource_of(location: str) -> str:
    """The resource a location is in (an entry's, or one contained in it): what :data:`_RESOURCE_LOCATION`
    matches at its start, found with str methods (``\\d`` is a Unicode decimal digit: ``str.isdecimal``)."""
    end = _indexed(location, 0, "Bundle.entry[")
    if end < 0 or location.find(".resource", end, end + 9) != end:
        return location
    end += len(".resource")
    contained = _indexed(location, end, ".contained[")
    return location[: contained if contained >= 0 else end]


def _indexed(text: str, start: int, prefix: str) -> int:
    """The end of ``prefix`` then digits then ``]`` at ``start`` of ``text``, or -1."""
    if text.find(prefix, start, start + len(prefix)) != start:  # startswith(prefix, start), as a C call compiled
        return -1
    digits = start + len(prefix)
    close = text.find("]", digits)
    return close + 1 if close > digits and text[digits:close].isdecimal() else -1


def _ours(node: Node) -> bool:
    """Our own eligibility assessment Observation: recomputed here, never read back."""
    concept = node.get("code")
    return isinstance(concept, dict) and any(
        c.get("system") == codes.CS_OBSERVATION for c in objects(concept.get("coding"))
    )


def _describe(node: Node) -> str:
    if node.type == "QuestionnaireResponse":
        return f"a QuestionnaireResponse to {node.get('questionnaire') or 'an unnamed Questionnaire'}"
    concept = node.get("code") if isinstance(node.get("code"), dict) else {}
    coding = next(iter(objects(concept.get("coding"))), {})
    label = concept.get("text") or coding.get("display") or coding.get("code") or "no code"
    return f"a {node.type} ({label})"


def _site_parts(s: Site) -> tuple[str, str | None]:
    """(joint, side or None) of a site."""
    side, _, joint = s.value.partition("-")
    return (joint, side) if joint and s is not Site.LOWER_BACK else (s.value, None)


#: (joint, side) of each site, computed once (a Site's ``.value`` is an Enum property, slow in a loop).
SITE_PARTS: Final[dict[Site, tuple[str, str | None]]] = {s: _site_parts(s) for s in Site}


def _overlap(a: list[Site], b: list[Site]) -> bool:
    """Two places agree when some joint of one is a joint of the other (a side not stated matches either)."""
    for site_a in a:
        ja, sa = SITE_PARTS[site_a]
        for site_b in b:
            jb, sb = SITE_PARTS[site_b]
            if ja == jb and (sa is None or sb is None or sa == sb):
                return True
    return False


def _words(sites: list[Site]) -> str:
    return ", ".join(SITE_WORDS[s] for s in sites)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _eligibility(ctx: Context, reading: _Reading) -> EligibilityRead | None:
    """Our eligibility QuestionnaireResponse (the first one), read strictly; one that cannot be read is
    reported and flags the criteria it would have answered."""
    for node in ctx.responses:
        canonical = str(node.get("questionnaire") or "").split("|")[0]
        if canonical not in (codes.Q_KNEE_HIP, codes.Q_BACK):
            continue
        ctx.used.add(node.location)
        if node.get("status") not in ("completed", "amended"):
            reason = f"the eligibility answers at {node.location} are {node.get('status')!r}, not completed: not used"
            for criterion in ("mobility", "contraindications"):
                reading.flag(criterion, reason)
            ctx.warn(node.at("status"), reason)
            return None
        try:
            got = read_eligibility_response(node.resource, base=node.location)
        except MappingError as exc:
            reason = f"the eligibility answers at {node.location} could not be read: {exc.issues[0].message}"
            for issue in exc.issues:
                ctx.warn(issue.location, f"eligibility answer not read: {issue.message}", issue.code)
            for criterion in ("mobility", "contraindications", "diagnosis"):
                reading.flag(criterion, reason)
            return None
        for warning in got.warnings:
            ctx.warn(warning.location, warning.message, warning.code)
        locations = _item_locations(node)
        answers = answers_json(got.answers)
        return EligibilityRead(
            pathway=got.pathway.value,
            location=node.location,
            sites=list(got.affected_sites),
            sites_location=locations.get("affected-sites", node.location),
            months=got.symptom_duration_months,
            months_location=locations.get("symptom-duration-months", node.location),
            onset=got.symptom_onset_date,
            onset_location=locations.get("symptom-onset-date", node.location),
            answers=answers,
            answer_locations={k: locations.get(_kebab(k), node.location) for k in answers},
        )
    return None


@cache
def _kebab(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), name)


def _item_locations(node: Node) -> dict[str, str]:
    return {str(item.get("linkId")): f"{node.location}.item[{k}]" for k, item in node.items("item")}


# --- from the facts to the referral ---------------------------------------------------------------------


def read_referral(bundle: Json) -> ReadResult:
    """Map a Bundle (FHIR JSON dict) to a referral; MappingError only for what is not a referral (module doc)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        kind = bundle.get("resourceType", "") if isinstance(bundle, dict) else ""
        raise MappingError([Issue("error", "structure", "expected a Bundle", str(kind))])
    ctx = Context.of(bundle)
    reading = _Reading(ctx)
    reading.run()
    try:
        referral = _load(reading)
    except MappingError as exc:
        raise MappingError([*ctx.errors, *exc.issues]) from None
    if ctx.errors:
        raise MappingError(ctx.errors)
    return ReadResult(referral, ctx.warnings, reading.provenance, reading.flags)


def _load(reading: _Reading) -> Referral:
    """The referral; a field the input format refuses is left out (a warning, and a flag on its criterion),
    except the fields whose error refuses the referral (FATAL_FIELDS)."""
    out = reading.out
    for _attempt in range(50):
        try:
            return load_referral({k: v for k, v in out.items() if v is not None})
        except ReferralInputError as exc:
            where = first_locations(reading.provenance)
            fatal = [e for e in exc.errors if _fatal(e.location)]
            if fatal:
                raise MappingError(
                    [_located(where, e.location, e.message, reading.ctx.sr.at()) for e in fatal]
                ) from None
            for e in exc.errors:
                location = _nearest(where, e.location) or reading.ctx.sr.location
                reading.ctx.warn(location, f"{e.location}: {e.message}; left out", "value")
                criterion = next((c for f, c in CRITERION_OF_FIELD.items() if e.location.startswith(f)), None)
                if criterion is not None:
                    reading.flag(criterion, f"{e.location} at {location} could not be used: {e.message}")
                _drop(out, e.location)
    raise MappingError([Issue("error", "value", "the referral could not be read", reading.ctx.sr.location)])


def _fatal(location: str) -> bool:
    return any(location == f or location.startswith(f + ".") for f in FATAL_FIELDS if f) or location in ("", "referral")


def _drop(data: Json, path: str) -> None:
    """Remove the element at an input-format path (``patient.address.postcode``, ``diagnoses[1].code``): the
    innermost part, so that a retry reports its container if that is now incomplete."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target: Any = data
    for part in parts[:-1]:
        key: Any = int(part[1:-1]) if part.startswith("[") else part
        if (isinstance(target, dict) and key in target) or (
            isinstance(target, list) and isinstance(key, int) and key < len(target)
        ):
            target = target[key]
        else:
            return
    last = parts[-1] if parts else ""
    if last.startswith("[") and isinstance(target, list):
        index = int(last[1:-1])
        if index < len(target):
            del target[index]
    elif isinstance(target, dict):
        if last in target:
            del target[last]
        elif target is not data:
            target.clear()  # a key the model names but we did not set: drop the container's content


def _nearest(where: dict[str, str], field_path: str) -> str | None:
    key = field_path
    while key:
        if key in where:
            return where[key]
        key = re.sub(r"(\.[^.]*|\[\d+\])$", "", key) if re.search(r"(\.[^.]*|\[\d+\])$", key) else ""
    return None


def _located(where: dict[str, str], field_path: str, message: str, fallback: str) -> Issue:
    """An input-format error restated at the FHIR element it came from (longest known prefix)."""
    location = _nearest(where, field_path) or fallback
    missing = "Field required" in message or message == "required"
    text = f"{field_path}: {'missing' if missing else message}" if field_path else message
    return Issue("error", "required" if missing else "value", f"cannot map {text}", location)
