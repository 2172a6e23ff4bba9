"""Generated instances for the JSON checks of ``native_resources``: one kind of element per invariant host.

Each kind is (generator, location of the focus, root built from the focus, invariant keys), as in
test_native.py, which compares every check with the engine on these variations. Member values mix what
makes each rule true and false with odd shapes (null, companions, wrong JSON types, mixed precisions) that
the checks must either decide as the engine does or leave to it. A key written ``Type:key`` names the
invariant of that type where R4 reuses a key (``inv-1`` is Task's and Parameters').
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Json = dict[str, Any]
Kind = tuple[Callable[[random.Random], Any], str, Callable[[Any], Json], list[str]]
ABSENT = object()
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
UCUM = "http://unitsofmeasure.org"


def varied(members: dict[str, list[Any]], head: Json | None = None) -> Callable[[random.Random], Json]:
    """An object whose members each take one of their values (ABSENT: left out), after ``head``."""

    def make(r: random.Random) -> Json:
        out = dict(head or {})
        for name, values in members.items():
            value = r.choice(values)
            if value is not ABSENT:
                out[name] = value
        return out

    return make


def rare(*values: Any, absent: int = 6) -> list[Any]:
    """Values that should be seldom: mostly ABSENT."""
    return [*values, *[ABSENT] * absent]


def often(*values: Any) -> list[Any]:
    return [*values, ABSENT]


def in_resource(resource_type: str, *path: str | int, extra: Json | None = None) -> Callable[[Any], Json]:
    """The root for a focus at ``path`` below a resource (indices make single-item arrays)."""

    def build(node: Any) -> Json:
        value: Any = node
        for step in reversed(path):
            value = [value] if isinstance(step, int) else {step: value}
        return {"resourceType": resource_type, **(extra or {}), **value}

    return build


def own(resource_type: str, members: dict[str, list[Any]]) -> Callable[[random.Random], Json]:
    return varied(members, {"resourceType": resource_type})


def _same(node: Json) -> Json:
    return node


COMPANION = {"extension": [{"url": "http://example.org/e", "valueString": "x"}]}
DATES = ["2020-01-01", "2021-06-30", "2020-01", "2020", "2020-01-01T10:00:00Z", "2020-01-01T09:00:00+01:00"]
DATES += ["2020-01-01T10:00:00.500Z", "2019-12-31T23:59:59.250-01:00", "2020-01-01T10:00:00", 20200101]
SAME_FORM = [
    ["2020-01-01", "2021-06-30", "2019-02-28"],
    ["2020-01", "2020-03"],
    ["2020-01-01T10:00:00Z", "2020-01-01T09:00:00+01:00", "2020-01-01T10:30:00-00:30", "2021-01-01T00:00:00Z"],
    ["2020-01-01T10:00:00.500Z", "2019-12-31T23:59:59.250-01:00", "2020-01-01T10:00:00.5Z"],
]


def dated(resource_type: str | None, first: str, second: str) -> Callable[[random.Random], Json]:
    """Two date-time members: mostly of one form (so that they compare), sometimes of any (the engine's)."""

    def make(r: random.Random) -> Json:
        out: Json = {} if resource_type is None else {"resourceType": resource_type}
        if r.random() < 0.75:
            form = r.choice(SAME_FORM)
            values = [r.choice(form), r.choice(form)]
        else:
            values = [r.choice([*DATES, None]), r.choice(DATES)]
        for name, value in zip((first, second), values, strict=True):
            if r.random() < 0.85:
                out[name] = value
        if r.random() < 0.05:
            out["_" + second] = COMPANION
        return out

    return make


QUANTITY = {
    "value": [1, 0, -2, Decimal("1.5"), Decimal("0.0"), None, ABSENT, ABSENT, "3", True],
    "code": ["kg", "1", "a", ABSENT, ABSENT],
    "system": [UCUM, UCUM, "http://example.org/units", ABSENT, ABSENT, 5],
    "_system": rare(COMPANION, absent=10),
    "comparator": rare("<", absent=2),
    "_value": rare({"id": "v"}, absent=12),
}
TIMING_REPEAT = {
    "duration": [1, 0, -1, Decimal("0.5"), ABSENT, ABSENT, "1"],
    "durationUnit": often("h"),
    "durationMax": rare(2, absent=2),
    "period": [1, 0, -3, Decimal("2.5"), ABSENT, ABSENT],
    "periodUnit": often("d"),
    "periodMax": rare(4, absent=2),
    "count": often(1),
    "countMax": rare(2, absent=2),
    "when": [["C"], ["MORN"], ["CM", "MORN"], ["HS"], [], ABSENT, ABSENT, "MORN"],
    "offset": often(30),
    "timeOfDay": rare(["10:00:00"], absent=2),
    "_duration": rare(COMPANION, absent=12),
}
ITEM_TYPES = ["group", "display", "choice", "open-choice", "string", "text", "boolean", "integer", "quantity"]
ITEM_TYPES += ["date", "url", "attachment", "reference", ABSENT, 7]
ENABLE_WHEN = {"question": "q", "operator": "exists", "answerBoolean": True}
QUESTIONNAIRE_ITEM = {
    "linkId": ["1"],
    "type": ITEM_TYPES,
    "item": often([{"linkId": "1.1", "type": "string"}]),
    "code": rare([{"code": "c"}], absent=2),
    "required": rare(True, absent=2),
    "repeats": [True, False, ABSENT, ABSENT, "true"],
    "readOnly": rare(True, absent=2),
    "initial": [[{"valueString": "a"}], [{"valueString": "a"}, {"valueString": "b"}], ABSENT, ABSENT],
    "answerOption": rare([{"valueString": "a"}], absent=2),
    "answerValueSet": rare("http://example.org/vs", absent=2),
    "maxLength": rare(5, absent=2),
    "enableWhen": [[ENABLE_WHEN], [ENABLE_WHEN] * 3, ABSENT, ABSENT],
    "enableBehavior": often("all"),
    "_type": rare(COMPANION, absent=14),
}
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def _concept(system: str, codes: list[str]) -> list[Any]:
    out: list[Any] = [{"coding": [{"system": system, "code": c}]} for c in codes]
    return [*out, {"coding": [{"system": "http://example.org", "code": codes[0]}]}, {"text": "t"}, ABSENT, ABSENT]


def _narrative(r: random.Random) -> Any:
    return r.choice(
        [
            f"<div {XHTML}><p>Seen in clinic</p></div>",
            f"<div {XHTML}>text <b>bold</b></div>",
            f'<div {XHTML}><img src="a.png"/></div>',
            f"<div {XHTML}><script>alert(1)</script>x</div>",
            f'<div {XHTML}><p onclick="x()">y</p></div>',
            f"<div {XHTML}>   </div>",
            "<div>no namespace</div>",
            f"<p {XHTML}>not a div</p>",
            f"<div {XHTML}><p>unclosed</div>",
            f"<div {XHTML}><form>f</form></div>",
        ]
    )


def _questionnaire(r: random.Random) -> Json:
    def item(link: str, depth: int) -> Json:
        found: Json = {"linkId": link, "type": "group" if depth else "string"}
        if depth:
            found["item"] = [item(r.choice([f"{link}.1", f"{link}.2", "1", "2"]), depth - 1) for _ in range(2)]
        return found

    q: Json = {"resourceType": "Questionnaire", "status": "draft"}
    q |= varied({"name": ["Abc", "ABC_1", "abc", "A b", "", "1A", ABSENT, 5]})(r)
    if r.random() < 0.8:
        q["item"] = [item(str(i + 1), r.choice([0, 1])) for i in range(r.choice([1, 2]))]
    if r.random() < 0.2:
        q["contained"] = [{"resourceType": "QuestionnaireResponse", "status": "completed", "item": [{"linkId": "9"}]}]
    if r.random() < 0.05:
        q["item"] = [{"linkId": ["1", "2"]}]
    return q


CONTAINED_TEAM = [
    {"resourceType": "Practitioner", "id": "p"},
    {"resourceType": "Organization", "id": "o"},
    "not an object",
]

RESOURCE_KINDS: dict[str, Kind] = {
    "Narrative.div": (_narrative, "Patient.text.div", in_resource("Patient", "text", "div"), ["txt-1", "txt-2"]),
    "Age": (varied(QUANTITY), "Condition.onsetAge", in_resource("Condition", "onsetAge"), ["age-1", "qty-3"]),
    "Quantity": (
        varied(QUANTITY),
        "Observation.valueQuantity",
        in_resource("Observation", "valueQuantity"),
        ["sqty-1"],
    ),
    "Distance": (
        varied(QUANTITY),
        "Observation.extension[0].valueDistance",
        lambda n: {"resourceType": "Observation", "extension": [{"url": "http://e", "valueDistance": n}]},
        ["dis-1"],
    ),
    "Duration": (
        varied(QUANTITY),
        "Observation.extension[0].valueDuration",
        lambda n: {"resourceType": "Observation", "extension": [{"url": "http://e", "valueDuration": n}]},
        ["drt-1"],
    ),
    "Count": (
        varied(QUANTITY | {"value": [1, 0, 2, Decimal("1.5"), None, ABSENT, ABSENT, "3"]}),
        "Observation.extension[0].valueCount",
        lambda n: {"resourceType": "Observation", "extension": [{"url": "http://e", "valueCount": n}]},
        ["cnt-3"],
    ),
    "Period": (
        dated(None, "start", "end"),
        "Observation.effectivePeriod",
        in_resource("Observation", "effectivePeriod"),
        ["per-1"],
    ),
    "Range": (
        varied({"low": often({"value": 1}), "high": rare({"value": 2}, absent=2)}),
        "Observation.valueRange",
        in_resource("Observation", "valueRange"),
        ["rng-2"],
    ),
    "Ratio": (
        varied({"numerator": often({"value": 1}), "denominator": often({"value": 2}), "extension": rare([{}])}),
        "Observation.valueRatio",
        in_resource("Observation", "valueRatio"),
        ["rat-1"],
    ),
    "Attachment": (
        varied({"data": often("aGk="), "contentType": often("text/plain"), "_contentType": rare(COMPANION)}),
        "DocumentReference.content[0].attachment",
        in_resource("DocumentReference", "content", 0, "attachment"),
        ["att-1"],
    ),
    "Timing.repeat": (
        varied(TIMING_REPEAT),
        "MedicationRequest.dosageInstruction[0].timing.repeat",
        in_resource("MedicationRequest", "dosageInstruction", 0, "timing", "repeat"),
        ["tim-1", "tim-2", "tim-4", "tim-5", "tim-6", "tim-7", "tim-8", "tim-9", "tim-10"],
    ),
    "DataRequirement.codeFilter": (
        varied({"path": often("code"), "searchParam": often("code"), "_path": rare(COMPANION)}),
        "Library.dataRequirement[0].codeFilter[0]",
        in_resource("Library", "dataRequirement", 0, "codeFilter", 0),
        ["drq-1"],
    ),
    "Expression": (
        varied({"expression": often("1 + 1"), "reference": often("http://x"), "language": ["text/fhirpath"]}),
        "Observation.extension[0].valueExpression",
        lambda n: {"resourceType": "Observation", "extension": [{"url": "http://e", "valueExpression": n}]},
        ["exp-1"],
    ),
    "TriggerDefinition": (
        varied(
            {
                "type": ["named-event", "periodic", "data-changed", "data-added", "data-access-ended", ABSENT],
                "name": often("event"),
                "timingTiming": rare({"code": {"text": "daily"}}, absent=2),
                "timingDate": rare("2020-01-01", absent=3),
                "data": often([{"type": "Patient"}]),
                "condition": rare({"language": "text/fhirpath", "expression": "true"}, absent=2),
            }
        ),
        "PlanDefinition.action[0].trigger[0]",
        in_resource("PlanDefinition", "action", 0, "trigger", 0),
        ["trd-1", "trd-2", "trd-3"],
    ),
    "Questionnaire.item": (
        varied(QUESTIONNAIRE_ITEM),
        "Questionnaire.item[0]",
        in_resource("Questionnaire", "item", 0),
        ["que-1", "que-3", "que-4", "que-5", "que-6", "que-8", "que-9", "que-10", "que-11", "que-12", "que-13"],
    ),
    "Questionnaire": (_questionnaire, "Questionnaire", _same, ["que-0", "que-2"]),
    "Questionnaire.item.enableWhen": (
        varied(
            {
                "question": ["q"],
                "operator": ["exists", "exists", "=", ABSENT],
                "answerBoolean": often(True),
                "answerString": rare("x", absent=2),
                "answerCoding": rare({"code": "a"}, absent=2),
            }
        ),
        "Questionnaire.item[0].enableWhen[0]",
        lambda n: {"resourceType": "Questionnaire", "item": [{"linkId": "1", "type": "string", "enableWhen": [n]}]},
        ["que-7"],
    ),
    "AllergyIntolerance": (
        own(
            "AllergyIntolerance",
            {
                "verificationStatus": _concept(ALLERGY_VERIFICATION, ["entered-in-error", "confirmed"]),
                "clinicalStatus": often({"text": "active"}),
            },
        ),
        "AllergyIntolerance",
        _same,
        ["ait-1", "ait-2"],
    ),
    "Appointment": (
        own(
            "Appointment",
            {
                "start": often("2020-01-01T10:00:00Z"),
                "end": often("2020-01-01T11:00:00Z"),
                "status": ["proposed", "booked", "cancelled", "noshow", "waitlist", "fulfilled", ABSENT],
                "cancelationReason": often({"text": "ill"}),
                "_status": rare(COMPANION, absent=12),
            },
        ),
        "Appointment",
        _same,
        ["app-2", "app-3", "app-4"],
    ),
    "Appointment.participant": (
        varied({"type": often([{"text": "t"}]), "actor": often({"reference": "Patient/1"}), "status": ["accepted"]}),
        "Appointment.participant[0]",
        in_resource("Appointment", "participant", 0),
        ["app-1"],
    ),
    "AuditEvent.entity": (
        varied({"name": often("n"), "query": often("cXVlcnk="), "_name": rare(COMPANION)}),
        "AuditEvent.entity[0]",
        in_resource("AuditEvent", "entity", 0),
        ["sev-1"],
    ),
    "CarePlan.activity": (
        varied({"detail": often({"status": "scheduled"}), "reference": often({"reference": "Task/1"})}),
        "CarePlan.activity[0]",
        in_resource("CarePlan", "activity", 0),
        ["cpl-3"],
    ),
    "CareTeam.participant": (
        varied(
            {
                "onBehalfOf": often({"reference": "Organization/1"}),
                "member": [{"reference": r} for r in ("#p", "#o", "#x", "Practitioner/1", "#")] + [ABSENT],
            }
        ),
        "CareTeam.participant[0]",
        in_resource("CareTeam", "participant", 0, extra={"contained": CONTAINED_TEAM[:2]}),
        ["ctm-1"],
    ),
    "Composition.section": (
        varied(
            {
                "text": often({"status": "generated", "div": f"<div {XHTML}>x</div>"}),
                "entry": often([{"reference": "Observation/1"}]),
                "section": rare([{"title": "t"}], absent=2),
                "emptyReason": often({"text": "none"}),
            }
        ),
        "Composition.section[0]",
        in_resource("Composition", "section", 0),
        ["cmp-1", "cmp-2"],
    ),
    "Consent": (
        own(
            "Consent",
            {
                "policy": often([{"uri": "http://x"}]),
                "policyRule": often({"text": "r"}),
                "patient": often({"reference": "Patient/1"}),
                "scope": _concept("something", ["patient-privacy", "research", "adr", "treatment"]),
            },
        ),
        "Consent",
        _same,
        ["ppc-1", "ppc-2", "ppc-3", "ppc-4", "ppc-5"],
    ),
    "Condition.stage": (
        varied({"summary": often({"text": "s"}), "assessment": often([{"reference": "x"}])}),
        "Condition.stage[0]",
        in_resource("Condition", "stage", 0),
        ["con-1"],
    ),
    "Condition.evidence": (
        varied({"code": often([{"text": "c"}]), "detail": often([{"reference": "x"}])}),
        "Condition.evidence[0]",
        in_resource("Condition", "evidence", 0),
        ["con-2"],
    ),
    "FamilyMemberHistory": (
        own(
            "FamilyMemberHistory",
            {
                "ageAge": often({"value": 50}),
                "ageString": rare("fifties", absent=3),
                "bornDate": often("1950"),
                "bornString": rare("1950s", absent=3),
                "estimatedAge": [True, False, ABSENT],
            },
        ),
        "FamilyMemberHistory",
        _same,
        ["fhs-1", "fhs-2"],
    ),
    "Immunization.education": (
        varied({"documentType": often("leaflet"), "reference": often("http://x"), "_reference": rare(COMPANION)}),
        "Immunization.education[0]",
        in_resource("Immunization", "education", 0),
        ["imm-1"],
    ),
    "List": (
        own(
            "List",
            {
                "mode": ["changes", "working", "snapshot", ABSENT],
                "entry": [
                    [{"item": {"reference": "x"}, "deleted": True}],
                    [{"item": {"reference": "x"}, "date": "2020-01-01"}],
                    [{"item": {"reference": "x"}}],
                    ABSENT,
                ],
                "emptyReason": often({"text": "none"}),
            },
        ),
        "List",
        _same,
        ["lst-1", "lst-2", "lst-3"],
    ),
    "MedicationAdministration.dosage": (
        varied(
            {
                "dose": often({"value": 1}),
                "rateQuantity": often({"value": 1}),
                "rateRatio": rare({"numerator": {"value": 1}}, absent=3),
                "text": ["t"],
            }
        ),
        "MedicationAdministration.dosage",
        in_resource("MedicationAdministration", "dosage"),
        ["mad-1"],
    ),
    "MedicationDispense": (
        dated("MedicationDispense", "whenHandedOver", "whenPrepared"),
        "MedicationDispense",
        _same,
        ["mdd-1"],
    ),
    "Task": (
        dated("Task", "lastModified", "authoredOn"),
        "Task",
        _same,
        ["Task:inv-1"],
    ),
    "Observation.referenceRange": (
        varied({"low": often({"value": 1}), "high": often({"value": 2}), "text": often("normal"), "age": [{}]}),
        "Observation.referenceRange[0]",
        in_resource("Observation", "referenceRange", 0),
        ["obs-3"],
    ),
    "Organization.telecom": (
        varied({"use": ["home", "work", ABSENT], "value": ["1"], "_use": rare(COMPANION)}),
        "Organization.telecom[0]",
        in_resource("Organization", "telecom", 0),
        ["org-3"],
    ),
    "Patient.contact": (
        varied(
            {
                "name": often({"family": "F"}),
                "telecom": rare([{"value": "1"}], absent=2),
                "address": rare([{"city": "C"}], absent=2),
                "organization": rare({"reference": "Organization/1"}, absent=2),
                "gender": ["female"],
            }
        ),
        "Patient.contact[0]",
        in_resource("Patient", "contact", 0),
        ["pat-1"],
    ),
    "RequestGroup.action": (
        varied({"resource": often({"reference": "x"}), "action": often([{"title": "a"}]), "title": ["t"]}),
        "RequestGroup.action[0]",
        in_resource("RequestGroup", "action", 0),
        ["rqg-1"],
    ),
}
#: Decided natively only when they hold (comparing two quantities is left to the engine).
RESOURCE_ONLY_TRUE = {"rng-2"}
