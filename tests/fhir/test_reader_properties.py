"""Property tests of the sender reader (issue 8): each fact moved among the places senders put it, in
generated Bundles of every type and reference style, is still found, and recorded where it was put."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escape_fhir.fhir.readers import ReadResult, assess_read, read_referral

Json = dict[str, Any]
NHS = "9990000018"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
KNEE_OA = ("239873007", "Osteoarthritis of knee")
LBP = ("278860009", "Chronic low back pain")
RIGHT_KNEE = ("6757004", "Right knee region structure")
KNEE = ("72696002", "Knee region structure")
RIGHT = ("24028007", "Right")


@dataclass
class Shape:
    """A Bundle under construction: entries by name, and where each fact was put."""

    bundle_type: str
    ref_style: str
    entries: dict[str, Json] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    placed: dict[str, str] = field(default_factory=dict)  # fact -> the path (after Bundle.entry[i]) it is at

    def add(self, name: str, resource: Json) -> None:
        self.ids[name] = str(uuid.uuid4())
        resource["id"] = self.ids[name]
        self.entries[name] = resource

    def ref(self, name: str) -> Json:
        """A reference to an entry, in this Bundle's reference style."""
        res = self.entries[name]
        kind = res["resourceType"]
        if self.ref_style == "conditional" and kind in ("Patient", "Practitioner"):
            ident = res["identifier"][0]
            return {"reference": f"{kind}?identifier={ident['system']}|{ident['value']}"}
        if self.ref_style == "identifier" and kind in ("Patient", "Practitioner"):
            return {"type": kind, "identifier": dict(res["identifier"][0])}
        if self.ref_style == "relative":
            return {"reference": f"{kind}/{self.ids[name]}"}
        if self.ref_style == "absolute":
            return {"reference": f"https://ehr.example.org/fhir/{kind}/{self.ids[name]}"}
        return {"reference": f"urn:uuid:{self.ids[name]}"}

    def full_url(self, name: str) -> str:
        res = self.entries[name]
        if self.ref_style in ("relative", "absolute"):
            return f"https://ehr.example.org/fhir/{res['resourceType']}/{self.ids[name]}"
        return f"urn:uuid:{self.ids[name]}"

    def build(self, order: list[str]) -> tuple[Json, dict[str, int]]:
        names = [n for n in order if n in self.entries]
        if self.bundle_type == "message":
            names = ["header", *[n for n in names if n != "header"]]
        else:
            names = [n for n in names if n != "header"]
        entries = []
        for name in names:
            entry: Json = {"fullUrl": self.full_url(name), "resource": self.entries[name]}
            if self.bundle_type == "transaction":
                entry["request"] = {"method": "POST", "url": self.entries[name]["resourceType"]}
            entries.append(entry)
        bundle = {"resourceType": "Bundle", "type": self.bundle_type, "timestamp": "2026-11-20T09:00:00Z"}
        return bundle | {"entry": entries}, {name: i for i, name in enumerate(names)}


def coding(system: str, code_display: tuple[str, str]) -> Json:
    return {"system": system, "code": code_display[0], "display": code_display[1]}


def base(bundle_type: str, ref_style: str, pathway: str) -> Shape:
    shape = Shape(bundle_type, ref_style)
    shape.add(
        "patient",
        {
            "resourceType": "Patient",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
            "name": [{"family": "Okafor", "given": ["Grace"]}],
            "gender": "female",
            "birthDate": "1956-02-11",
        },
    )
    shape.add(
        "gp",
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "555123456789"}],
            "name": [{"family": "Shah", "given": ["Priya"], "prefix": ["Dr"]}],
        },
    )
    text = "Referral to ESCAPE-pain " + ("for knees and hips" if pathway == "knee-hip" else "for backs")
    shape.add(
        "sr",
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": SNOMED, "code": "306170007"}], "text": text},
            "subject": shape.ref("patient"),
            "requester": shape.ref("gp"),
            "authoredOn": "2026-11-20",
        },
    )
    return shape


def place_diagnosis(shape: Shape, where: str, diagnosis: tuple[str, str], site: Json | None) -> None:
    """Put the diagnosis (and a bodySite, if any) in a Condition entry, a contained Condition, or reasonCode."""
    sr = shape.entries["sr"]
    condition: Json = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [coding(SNOMED, diagnosis)]},
        "subject": shape.ref("patient"),
    }
    if site is not None:
        condition["bodySite"] = [site]
    if where == "reasonCode":
        sr["reasonCode"] = [{"coding": [coding(SNOMED, diagnosis)]}]
        shape.placed["diagnosis"] = "resource.reasonCode[0].coding[0]"
        if site is not None:
            sr["bodySite"] = [site]
            shape.placed["site"] = "resource.bodySite[0]"
        return
    if where == "contained":
        condition["id"] = "dx1"
        condition["subject"] = {"reference": "urn:uuid:" + shape.ids["patient"]} | shape.ref("patient")
        sr["contained"] = [condition]
        sr["reasonReference"] = [{"reference": "#dx1"}]
        shape.placed["diagnosis"] = "resource.contained[0].code.coding[0]"
        if site is not None:
            shape.placed["site"] = "resource.contained[0].bodySite[0]"
        return
    shape.add("condition", condition)
    if where == "reasonReference":
        sr["reasonReference"] = [shape.ref("condition")]
    shape.placed["diagnosis"] = "condition:resource.code.coding[0]"
    if site is not None:
        shape.placed["site"] = "condition:resource.bodySite[0]"


def location(placed: str, index: dict[str, int], default: str = "sr") -> str:
    name, _, path = placed.rpartition(":")
    return f"Bundle.entry[{index[name or default]}].{path}"


def header(shape: Shape) -> None:
    shape.add(
        "header",
        {
            "resourceType": "MessageHeader",
            "eventCoding": {
                "system": "https://fhir.nhs.uk/CodeSystem/message-events-bars",
                "code": "servicerequest-request",
            },
            "source": {"endpoint": "https://ehr.example.org"},
            "focus": [shape.ref("sr")],
        },
    )


BUNDLE_TYPES = st.sampled_from(["message", "transaction", "collection"])
REF_STYLES = st.sampled_from(["urn", "relative", "absolute", "conditional", "identifier"])
SITES = st.sampled_from(["precoordinated", "laterality-coding", "postcoordinated", "diagnosis-display", "none"])
DIAGNOSIS_PLACES = st.sampled_from(["reasonReference", "contained", "reasonCode", "unreferenced"])


def knee_site(kind: str) -> tuple[Json | None, str | None]:
    """A bodySite for the right knee written one way, and whether the side is then known."""
    if kind == "precoordinated":
        return {"coding": [coding(SNOMED, RIGHT_KNEE)]}, "right-knee"
    if kind == "laterality-coding":
        return {"coding": [coding(SNOMED, KNEE), coding(SNOMED, RIGHT)]}, "right-knee"
    if kind == "postcoordinated":
        return {"coding": [{"system": SNOMED, "code": f"{KNEE[0]}:272741003={RIGHT[0]}"}]}, "right-knee"
    return None, None


def shuffled(shape: Shape, rnd: Any) -> tuple[Json, dict[str, int]]:
    """The Bundle with a MessageHeader and its entries in a random order (the header first in a message)."""
    header(shape)
    order = list(shape.entries)
    rnd.shuffle(order)
    return shape.build(order)


def read(bundle: Json) -> ReadResult:
    return read_referral(copy.deepcopy(bundle))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BUNDLE_TYPES, REF_STYLES, SITES, DIAGNOSIS_PLACES, st.randoms(use_true_random=False))
def test_knee_facts_are_found_wherever_placed(
    bundle_type: str, ref_style: str, site_kind: str, diagnosis_place: str, rnd: Any
) -> None:
    shape = base(bundle_type, ref_style, "knee-hip")
    site, expected_site = knee_site(site_kind)
    diagnosis = KNEE_OA
    if site_kind == "diagnosis-display":
        diagnosis, expected_site = (KNEE_OA[0], "Osteoarthritis of right knee"), "right-knee"
    place_diagnosis(shape, diagnosis_place, diagnosis, site)
    bundle, index = shuffled(shape, rnd)
    result = read(bundle)
    r = result.referral
    assert r.pathway.value == "knee-hip"
    assert [d.code for d in r.diagnoses] == [KNEE_OA[0]]
    assert r.patient.nhs_number == NHS
    assert [s.value for s in r.affected_sites] == [expected_site or "knee"]
    where = result.where()
    assert where["diagnoses[0]"] == location(shape.placed["diagnosis"], index)
    if site is not None:
        assert where["affectedSites"].startswith(location(shape.placed["site"], index))
    else:
        assert where["affectedSites"] == location(shape.placed["diagnosis"], index)
    assert where["patient.nhsNumber"] == f"Bundle.entry[{index['patient']}].resource.identifier[0].value"
    # The site criterion is met wherever the site was written; nothing here is contradictory.
    criteria = {c.code: c for c in assess_read(result).criteria}
    assert criteria["site"].outcome.value == "met"
    assert not result.flags


ITEM_CODES = ["91340-0", "91341-8", "91342-6", "91343-4", "91344-2", "91345-9", "91346-7", "91347-5", "91348-3"]
ANSWERS = st.lists(st.booleans(), min_size=8, max_size=8).flatmap(
    lambda agree: st.sampled_from(["Not at all", "Slightly", "Moderately", "Very much", "Extremely"]).map(
        lambda bother: (agree, bother)
    )
)
STARTBACK_PLACES = st.sampled_from(["panel", "scores", "qr-questionnaire-entry", "qr-contained-questionnaire"])


def expected_risk(agree: list[bool], bother: str) -> tuple[int, int, str]:
    item9 = bother in ("Very much", "Extremely")
    total = sum(agree) + item9
    psychosocial = sum(agree[4:]) + item9
    return total, psychosocial, "low" if total <= 3 else "high" if psychosocial >= 4 else "medium"


def place_startback(shape: Shape, where: str, agree: list[bool], bother: str) -> None:
    words = ["Agree" if a else "Disagree" for a in agree] + [bother]
    subject = shape.ref("patient")
    if where == "panel":
        components = [
            {"code": {"coding": [{"system": LOINC, "code": code}]}, "valueString": word}
            for code, word in zip(ITEM_CODES, words, strict=True)
        ]
        shape.add(
            "startback",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "91349-1"}]},
            }
            | {"subject": subject, "component": components},
        )
        shape.placed["startback"] = "startback:resource.component"
        return
    if where == "scores":
        total, psychosocial, risk = expected_risk(agree, bother)
        risk_code = {"low": "LA9194-7", "medium": "LA8982-6", "high": "LA9193-9"}[risk]
        for name, code, value in (
            ("total", "91351-7", {"valueInteger": total}),
            ("sub", "91350-9", {"valueQuantity": {"value": psychosocial, "unit": "score"}}),
            ("risk", "91352-5", {"valueCodeableConcept": {"coding": [{"system": LOINC, "code": risk_code}]}}),
        ):
            shape.add(
                name,
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                }
                | {"subject": subject}
                | value,
            )
        shape.placed["startback"] = "total:resource"
        return
    questionnaire = {
        "resourceType": "Questionnaire",
        "url": "https://forms.example.org/Questionnaire/back-screen",
        "status": "active",
        "item": [
            {
                "linkId": f"q{k + 1}",
                "code": [{"system": LOINC, "code": code}],
                "type": "choice",
                "text": f"Item {k + 1}",
            }
            for k, code in enumerate(ITEM_CODES)
        ],
    }
    response: Json = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": subject,
        "item": [{"linkId": f"q{k + 1}", "answer": [{"valueString": w}]} for k, w in enumerate(words)],
    }
    if where == "qr-contained-questionnaire":
        questionnaire["id"] = "q"
        response["contained"] = [questionnaire]
        response["questionnaire"] = "#q"
    else:
        shape.add("questionnaire", questionnaire)
        response["questionnaire"] = questionnaire["url"]
    shape.add("startback", response)
    shape.placed["startback"] = "startback:resource"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BUNDLE_TYPES, REF_STYLES, STARTBACK_PLACES, ANSWERS, DIAGNOSIS_PLACES, st.randoms(use_true_random=False))
def test_startback_is_found_wherever_placed(
    bundle_type: str, ref_style: str, where: str, answers: tuple[list[bool], str], diagnosis_place: str, rnd: Any
) -> None:
    agree, bother = answers
    shape = base(bundle_type, ref_style, "back")
    place_diagnosis(shape, diagnosis_place, LBP, None)
    place_startback(shape, where, agree, bother)
    bundle, index = shuffled(shape, rnd)
    result = read(bundle)
    r = result.referral
    assert r.pathway.value == "back"
    got = r.effective_start_back()
    assert got is not None
    total, psychosocial, risk = expected_risk(agree, bother)
    assert (got.total, got.psychosocial, got.risk) == (total, psychosocial, risk)
    if where == "scores":  # three Observations: the reading is recorded at the risk
        assert result.where()["startBack"] == f"Bundle.entry[{index['risk']}].resource"
    else:
        assert result.where()["startBack"] == location(shape.placed["startback"], index)
    assert not [w for w in result.warnings if "not understood" in w.message], result.warnings


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["onsetDateTime", "onsetPeriod", "onsetString-date", "onsetString-words", "onsetAge"]),
    st.integers(min_value=1, max_value=30),
)
def test_onset_is_found_and_never_overstates_the_duration(form: str, months_before: int) -> None:
    shape = base("collection", "urn", "knee-hip")
    place_diagnosis(shape, "reasonReference", KNEE_OA, None)
    condition = shape.entries["condition"]
    year, month = divmod(2026 * 12 + 10 - months_before, 12)
    onset = f"{year:04d}-{month + 1:02d}-20"
    if form == "onsetDateTime":
        condition["onsetDateTime"] = onset
    elif form == "onsetPeriod":
        condition["onsetPeriod"] = {"start": onset}
    elif form == "onsetString-date":
        condition["onsetString"] = onset[:7]
    elif form == "onsetString-words":
        condition["onsetString"] = f"about {months_before} months"
    else:
        condition["onsetAge"] = {"value": 70, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
    bundle, index = shape.build(list(shape.entries))
    result = read(bundle)
    r = result.referral
    element = {
        "onsetPeriod": "onsetPeriod.start",
        "onsetString-date": "onsetString",
        "onsetString-words": "onsetString",
    }
    path = f"Bundle.entry[{index['condition']}].resource.{element.get(form, form)}"
    where = result.where()
    if form == "onsetString-words":
        assert r.symptom_duration_months == months_before
        assert where["symptomDurationMonths"] == path
    else:
        assert where.get("symptomOnsetDate") == path or any(f.criterion == "duration" for f in result.flags)
        if r.symptom_onset_date is not None:
            assert where["symptomOnsetDate"] == path
        if form in ("onsetDateTime", "onsetPeriod"):
            assert r.symptom_onset_date is not None and r.symptom_onset_date.isoformat() == onset
    # Whatever the form, the duration verdict never claims more than the Bundle says.
    duration = {c.code: c for c in assess_read(result).criteria}["duration"]
    if months_before < 3:
        assert duration.outcome.value != "met", duration


# --- fast paths of the reader against the plain forms they replace ----------------------------------------

_WORDS = st.sampled_from(
    [
        *("knee", "knees", "kneecaps", "hip", "hips", "low back", "lower back", "lumbar", "lumbago", "left", "right"),
        *("both", "bilateral", "back", "lo", "s", "x", "_", "1", "é", "ſ", "K", " ", ", ", "-", "OA"),
    ]
)


def _sites_with_boundary_pattern(text: str) -> list[Any]:
    """sender_terms.sites_in_text as it was written with ``\\b`` in the pattern (the reference)."""
    import re

    from escape_fhir.fhir import sender_terms as terms

    joints = re.compile(r"\b(knees|hips|knee(?:caps?)?|hip|low(?:er)? back|lumbar|lumbago)(?![a-z])")
    lowered, found = text.lower(), []
    for match in joints.finditer(lowered):
        word = match.group(1)
        joint, plural = terms._JOINT_OF.get(word) or (
            ("knee", None) if word.startswith("knee") else ("hip", None) if word == "hip" else ("lower-back", None)
        )
        before = terms._WORD.findall(lowered, max(0, match.start() - 24), match.start())[-3:]
        sides = next((terms._SIDE_WORDS[w] for w in reversed(before) if w in terms._SIDE_WORDS), None)
        found += [s for s in terms.sites_of(joint, sides or plural) if s not in found]
    return found


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_WORDS, st.sampled_from(["", " ", "_", "a", "."])), max_size=8), st.booleans())
def test_sites_in_text_checks_the_word_boundary_as_the_pattern_did(parts: list[tuple[str, str]], upper: bool) -> None:
    from escape_fhir.fhir.sender_terms import sites_in_text

    text = "".join(word + glue for word, glue in parts)
    text = text.upper() if upper else text
    assert sites_in_text(text) == _sites_with_boundary_pattern(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["identifier", "=", "&", "a", "|", "http://x/y", "%7C", "+", "", "b=c"]), max_size=8))
def test_conditional_query_split_as_parse_qsl_splits_it(parts: list[str]) -> None:
    from urllib.parse import parse_qsl

    from escape_fhir.fhir.bundle_index import _query_pairs

    query = "".join(parts)
    assert _query_pairs(query) == parse_qsl(query)


def test_relinked_startback_response_leaves_the_senders_response_unchanged() -> None:
    from escape_fhir.fhir.sender_startback import _relinked

    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://sender/q",
        "answer": [{"item": [{"linkId": "top-answer"}]}],  # not an item's answer: not followed
        "item": [
            {"linkId": "g", "item": [{"linkId": "q1", "answer": [{"valueInteger": 1, "item": [{"linkId": "q2"}]}]}]},
            "not an object",
        ],
    }
    before = copy.deepcopy(qr)
    out = _relinked(qr, {"q1": "91340-0", "q2": "91341-8", "top-answer": "x"})
    assert qr == before
    assert "questionnaire" not in out
    assert out["item"][0]["item"][0]["linkId"] == "91340-0"
    assert out["item"][0]["item"][0]["answer"][0]["item"][0]["linkId"] == "91341-8"
    assert out["answer"][0]["item"][0]["linkId"] == "top-answer"
    assert out["item"][1] == "not an object"


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Bundle", ".entry", "[", "]", "0", "12", "٣", "x", ".resource", ".contained", ".code", "."]),
        max_size=10,
    )
)
def test_resource_of_a_location_as_the_pattern_finds_it(parts: list[str]) -> None:
    from escape_fhir.fhir.readers import _RESOURCE_LOCATION, _resource_of

    for location in ("".join(parts), "Bundle.entry[" + "".join(parts)):
        match = _RESOURCE_LOCATION.match(location)
        assert _resource_of(location) == (match.group(0) if match else location)


def _sites_with_finditer(text: str) -> list[Any]:
    """sender_terms.sites_in_text as it was before its str-method scan: the pattern without ``\\b`` and the
    word boundary checked on the character before each match, the side words found with ``_WORD.findall``."""
    from escape_fhir.fhir import sender_terms as terms

    lowered, found = text.lower(), []
    for match in terms._JOINTS.finditer(lowered):
        start = match.start()
        if start and (lowered[start - 1].isalnum() or lowered[start - 1] == "_"):
            continue
        word = match.group(1)
        joint, plural = terms._JOINT_OF.get(word) or (
            ("knee", None) if word.startswith("knee") else ("hip", None) if word == "hip" else ("lower-back", None)
        )
        before = terms._WORD.findall(lowered, max(0, start - 24), start)[-3:]
        sides = next((terms._SIDE_WORDS[w] for w in reversed(before) if w in terms._SIDE_WORDS), None)
        found += [s for s in terms.sites_of(joint, sides or plural) if s not in found]
    return found


_SCAN_PARTS = st.sampled_from(
    [
        *("knee", "knees", "kneecap", "kneecaps", "hip", "hips", "low back", "lower back", "lumbar", "lumbago"),
        *("left", "right", "both", "bilateral", "cleft", "aright", "back", "low", "lower", "lumba", "cap", "er"),
        *("go", "r", "s", "x", "_", "1", "é", "ſ", "K", "İ", " ", ", ", "-", "OA", "L"),
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_SCAN_PARTS, st.sampled_from(["", " ", "_", "a", ".", "s"])), max_size=10), st.booleans())
def test_sites_in_text_finds_what_the_joint_pattern_found(parts: list[tuple[str, str]], upper: bool) -> None:
    """The str-method scan (each joint word's stem found with ``str.find``, the side words by a backward scan
    over ``a-z`` runs) finds the same sites, in the same order, as the pattern it replaced."""
    from escape_fhir.fhir.sender_terms import sites_in_text

    text = "".join(word + glue for word, glue in parts)
    text = text.upper() if upper else text
    assert sites_in_text(text) == _sites_with_finditer(text)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["ESCAPE", "escape", "Escape", "eſcape", "ESCAPE-pain", "-", " ", "pain", "PAIN", "é", "x"]),
        max_size=6,
    )
)
def test_programme_prefilter_answers_as_the_pattern(parts: list[str]) -> None:
    """``programme_in`` (a substring test first on ASCII text) finds the programme's name where the
    case-blind pattern does, at the same place, non-ASCII case folds (``ſ`` for ``s``) included."""
    from escape_fhir.fhir.sender_terms import PROGRAMME_WORDS, programme_in

    text = "".join(parts)
    got, want = programme_in(text), PROGRAMME_WORDS.search(text)
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert got.span() == want.span()


_ANSWER_WORDS = st.sampled_from(
    ["Very", "much", "very much", " ", "_", "-", "\t", "Agree", "DISAGREE", "not", "at", "é"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ANSWER_WORDS, max_size=6))
def test_answer_words_are_read_as_the_options_words_were(parts: list[str]) -> None:
    """``qr_read._by_words`` (each question's option words worked out once) gives the option the scan of every
    option's ``normalise_words`` gave, for every question with options; ``_normalised`` is ``normalise_words``."""
    from escape_fhir.fhir import qr_read
    from escape_fhir.fhir._forms import FORMS, normalise_words

    text = "".join(parts)
    assert qr_read._normalised(text) == normalise_words(text)
    for form in FORMS:
        for question in form.questions:
            wanted = normalise_words(text)
            scanned = next(
                (o.code for o in question.options if wanted in (normalise_words(o.code), normalise_words(o.display))),
                None,
            )
            assert qr_read._by_words(question, text) == scanned
            for option in question.options:
                assert qr_read._by_words(question, option.display) == next(
                    o.code
                    for o in question.options
                    if normalise_words(option.display) in (normalise_words(o.code), normalise_words(o.display))
                )


def test_eligibility_reading_tables_agree_with_what_they_replace() -> None:
    """The per-process tables of qr_read give what the calls they replace gave: the converter dispatched by
    name is the table's, a field's linkId is ``link_id``'s, a site's member is ``Site(value)``."""
    from escape_fhir.domain.referral import Site
    from escape_fhir.fhir import qr_read
    from escape_fhir.fhir._forms import PATHWAY_FIELDS, link_id

    assert qr_read._CONVERTERS["choice"] is qr_read._choice
    assert qr_read._CONVERTERS["boolean"] is qr_read._boolean
    assert qr_read._CONVERTERS["integer"] is qr_read._integer
    for fields in PATHWAY_FIELDS.values():
        for f in fields:
            assert qr_read._LINK_OF_FIELD[f] == link_id(f)
    for site in Site:
        assert qr_read._SITE_OF_VALUE[site.value] is Site(site.value)
