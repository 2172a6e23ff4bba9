"""STarT Back screening in a sender's Bundle, in every shape seen (issue 8), and never dropped silently.

Places, best first:

1. a QuestionnaireResponse to the project's STarT Back Questionnaire, or whose linkIds (or definitions) are
   the LOINC item codes;
2. a QuestionnaireResponse with the sender's own linkIds whose Questionnaire (an entry of the Bundle,
   contained in the response, or the project's, found by canonical) puts the LOINC codes on ``item.code``;
3. one panel Observation (LOINC 91349-1) whose components are the items and/or the scores;
4. separate score Observations: total 91351-7, psychosocial subscore 91350-9, risk 91352-5.

Only ``completed``/``amended`` responses and ``final``/``amended``/``corrected`` Observations are scored; any
other, a result that breaks the Keele rule, or a resource that cannot be read, becomes a *problem*: a reason
for the clinician (the STarT Back criterion is then unknown) and a warning in the acknowledgement.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

from escape_fhir.domain.startback import ITEM_CODES, risk_for, score, startback_problems
from escape_fhir.errors import MappingError
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundle_index import Json, Node, objects
from escape_fhir.fhir.qr_read import read_startback_response
from escape_fhir.fhir.sender_context import Context, Found

SCORED_RESPONSE: Final = ("completed", "amended")
SCORED_OBSERVATION: Final = ("final", "amended", "corrected")
SCORE_NAMES: Final = {
    codes.STARTBACK_TOTAL[0]: "total",
    codes.STARTBACK_SUBSCORE[0]: "psychosocial",
    codes.STARTBACK_RISK[0]: "risk",
}
RISK_BY_LOINC: Final = {code: risk for risk, (code, _) in codes.STARTBACK_RISK_ANSWERS.items()}
ELIGIBILITY_QUESTIONNAIRES: Final = (codes.Q_KNEE_HIP, codes.Q_BACK)
#: The unions ``int | float | Decimal`` and ``float | Decimal`` as tuples: compiled, ``isinstance(v, A | B)``
#: builds the union on every call.
_NUMBER_TYPES: Final = (int, float, Decimal)
_FRACTION_TYPES: Final = (float, Decimal)


class StartBackFound:
    """Every STarT Back reading found (answers or a result, each where it was), and the problems."""

    def __init__(self) -> None:
        self.readings: list[Found] = []
        self.problems: list[str] = []


def loinc_of(concept: Any) -> str | None:
    for coding in objects(concept.get("coding") if isinstance(concept, dict) else None):
        if coding.get("system") == codes.LOINC and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def find_startback(ctx: Context) -> StartBackFound:
    out = StartBackFound()
    for node in ctx.responses:
        _response(ctx, node, out)
    coded = [(loinc_of(n.get("code")), n) for n in ctx.observations]
    for code, node in coded:
        if code == codes.STARTBACK_PANEL[0]:
            _panel(ctx, node, out)
    scores = [n for code, n in coded if code in SCORE_NAMES]
    if scores:
        _scores(ctx, scores, out)
    return out


# --- QuestionnaireResponses --------------------------------------------------------------------------


def _response(ctx: Context, node: Node, out: StartBackFound) -> None:
    canonical = str(node.get("questionnaire") or "").split("|")[0]
    if canonical in ELIGIBILITY_QUESTIONNAIRES:
        return
    qr = node.resource
    if canonical != codes.Q_STARTBACK and not _has_loinc_items(qr):
        questionnaire = _questionnaire(ctx, node, canonical)
        mapping = _loinc_links(questionnaire.resource) if questionnaire is not None else {}
        if not mapping:
            return  # not STarT Back: reported later as not understood unless something else reads it
        ctx.used.add(questionnaire.location)  # type: ignore[union-attr]
        qr = _relinked(qr, mapping)
    ctx.used.add(node.location)
    status = node.get("status")
    if status not in SCORED_RESPONSE:
        out.problems.append(f"the STarT Back response at {node.location} is {status!r}, not completed: not scored")
        return
    try:
        got = read_startback_response(qr, base=node.location)
    except MappingError as exc:
        for issue in exc.issues:
            ctx.warn(issue.location, f"STarT Back not read: {issue.message}", issue.code)
        out.problems.append(f"the STarT Back response at {node.location} could not be read: {exc.issues[0].message}")
        return
    for warning in got.warnings:
        ctx.warn(warning.location, warning.message, warning.code)
    if got.answers is not None:
        out.readings.append(Found({"answers": got.answers}, node.location, "a STarT Back QuestionnaireResponse"))
    elif got.result is not None:
        result = got.result.model_dump(mode="json", exclude_none=True)
        out.readings.append(Found({"result": result}, node.location, "a STarT Back QuestionnaireResponse"))


def _has_loinc_items(qr: Json) -> bool:
    stack = list(objects(qr.get("item")))
    while stack:
        item = stack.pop()
        for reference in (item.get("linkId"), item.get("definition")):
            if isinstance(reference, str) and reference.rsplit("/", 1)[-1].rsplit("#", 1)[-1] in ITEM_CODES:
                return True
        stack.extend(objects(item.get("item")))
        for answer in objects(item.get("answer")):
            stack.extend(objects(answer.get("item")))
    return False


def _questionnaire(ctx: Context, node: Node, canonical: str) -> Node | None:
    if canonical.startswith("#"):
        return ctx.index.contained.get((node.entry, canonical[1:]))
    for q in ctx.index.of_type("Questionnaire"):
        url = q.get("url")
        if canonical and isinstance(url, str) and url.split("|")[0] == canonical:
            return q
    return None


def _loinc_links(questionnaire: Json) -> dict[str, str]:
    """linkId -> LOINC code of every STarT Back item and score of a Questionnaire (``item.code``)."""
    links: dict[str, str] = {}
    stack = list(objects(questionnaire.get("item")))
    while stack:
        item = stack.pop()
        for coding in objects(item.get("code")):
            code = coding.get("code")
            if coding.get("system") == codes.LOINC and (code in ITEM_CODES or code in SCORE_NAMES):
                links[str(item.get("linkId"))] = str(code)
        stack.extend(objects(item.get("item")))
    return links if any(code in ITEM_CODES for code in links.values()) or len(links) == 3 else {}


def _relinked(qr: Json, mapping: dict[str, str]) -> Json:
    """A copy of the response with each linkId replaced by its LOINC code (same shape: same locations).

    Only the objects on the way to the items (the response, its item and answer lists, each item and answer)
    are copied, not the whole response (``copy.deepcopy`` was most of the time of reading such a Bundle):
    nothing else is changed, and the sender's response is left as it was."""
    copied = dict(qr)
    copied.pop("questionnaire", None)
    # (object, the keys to follow): the response and an answer hold items, an item holds items and answers.
    stack: list[tuple[Json, tuple[str, ...]]] = [(copied, ("item",))]
    while stack:
        holder, keys = stack.pop()
        for key in keys:
            listed = holder.get(key)
            if not isinstance(listed, list):
                continue
            children: list[Any] = [dict(v) if isinstance(v, dict) else v for v in listed]
            holder[key] = children
            for child in children:
                if not isinstance(child, dict):
                    continue
                if key == "answer":
                    stack.append((child, ("item",)))
                    continue
                if str(child.get("linkId")) in mapping:
                    child["linkId"] = mapping[str(child["linkId"])]
                stack.append((child, ("item", "answer")))
    return copied


# --- Observations ----------------------------------------------------------------------------------------


def _observation_status(ctx: Context, node: Node, out: StartBackFound) -> bool:
    ctx.used.add(node.location)
    status = node.get("status")
    if status in SCORED_OBSERVATION:
        return True
    out.problems.append(f"the STarT Back Observation at {node.location} is {status!r}, not final: not used")
    return False


def _panel(ctx: Context, node: Node, out: StartBackFound) -> None:
    """A 91349-1 panel: its item components become a response (same reader as the answers), its score
    components a result; members (``hasMember``) are read as score Observations."""
    if not _observation_status(ctx, node, out):
        return
    items, scores = [], []
    for k, component in node.items("component"):
        code = loinc_of(component.get("code"))
        if code in ITEM_CODES:
            answer = {key: v for key, v in component.items() if key.startswith("value")}
            concept = answer.pop("valueCodeableConcept", None)
            if isinstance(concept, dict):  # an Observation's coded value is a CodeableConcept, an answer's a Coding
                first = next(iter(objects(concept.get("coding"))), None)
                answer.update({"valueCoding": first} if first else {"valueString": concept.get("text")})
            items.append({"linkId": code, "answer": [answer] if answer else []})
        elif code in SCORE_NAMES:
            scores.append((k, code, component))
        else:
            ctx.warn(f"{node.location}.component[{k}]", "component of the STarT Back panel not understood: ignored")
    if len(items) == len(ITEM_CODES):
        synthetic = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}
        try:
            got = read_startback_response(synthetic, base=node.location)
        except MappingError as exc:
            message = exc.issues[0].message
            out.problems.append(f"the STarT Back panel at {node.location} could not be read: {message}")
            ctx.warn(node.at("component"), f"STarT Back panel not read: {message}")
            return
        if got.answers is not None:
            out.readings.append(Found({"answers": got.answers}, node.at("component"), "a STarT Back panel"))
            return
    elif items:
        text = f"the STarT Back panel at {node.location} has {len(items)} of the 9 items: the items are not scored"
        out.problems.append(text)
        ctx.warn(node.at("component"), text)
    if scores:
        values = {SCORE_NAMES[code]: (f"{node.location}.component[{k}]", c) for k, code, c in scores}
        _result(ctx, values, node.at("component"), "a STarT Back panel", out)


def _scores(ctx: Context, nodes: list[Node], out: StartBackFound) -> None:
    values: dict[str, tuple[str, Json]] = {}
    for node in nodes:
        if not _observation_status(ctx, node, out):
            continue
        name = SCORE_NAMES[str(loinc_of(node.get("code")))]
        if name in values:
            out.problems.append(f"two STarT Back {name} Observations ({values[name][0]}, {node.location})")
            continue
        values[name] = (node.location, node.resource)
    if values:
        # The reading is where its risk is (the result a clinician acts on), else the first score.
        where = values["risk"][0] if "risk" in values else next(iter(values.values()))[0]
        _result(ctx, values, where, "STarT Back score Observations", out)


def _result(ctx: Context, values: dict[str, tuple[str, Json]], location: str, place: str, out: StartBackFound) -> None:
    result: Json = {}
    for name, (where, element) in values.items():
        value = _risk(element) if name == "risk" else _integer(element)
        if value is None:
            out.problems.append(f"the STarT Back {name} at {where} is not understood")
            ctx.warn(where, f"STarT Back {name} not understood: not used")
            return
        result[name] = value
    if "risk" not in result:
        if "total" in result and "psychosocial" in result:
            total, sub = result["total"], result["psychosocial"]
            if 0 <= total <= 9 and 0 <= sub <= min(5, total):
                result["risk"] = risk_for(total, sub).value
        if "risk" not in result:
            out.problems.append(f"the STarT Back scores at {location} give no risk level")
            return
    problems = startback_problems(result.get("total"), result.get("psychosocial"), result["risk"])
    if problems:
        shown = ", ".join(f"{k} {v}" for k, v in result.items())
        out.problems.append(f"the STarT Back result at {location} ({shown}) cannot be right: {'; '.join(problems)}")
        ctx.warn(location, f"STarT Back result not used: {'; '.join(problems)}", "value")
        return
    out.readings.append(Found({"result": result}, location, place))


def _integer(element: Json) -> int | None:
    """valueInteger, or a valueQuantity/valueDecimal that is a small whole number (no float of any size:
    a value like 1e999999 is refused at once, not converted)."""
    value = element.get("valueInteger")
    if value is None:
        quantity = element.get("valueQuantity")
        value = quantity.get("value") if isinstance(quantity, dict) else element.get("valueDecimal")
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        return None
    if isinstance(value, _FRACTION_TYPES) and not math.isfinite(value):
        return None
    if not -1000 <= value <= 1000:
        return None  # bounded before any conversion: int(Decimal("1e999999")) would take seconds
    return int(value) if value == int(value) else None


def _risk(element: Json) -> str | None:
    concept = element.get("valueCodeableConcept")
    words = ("low", "medium", "high")
    if isinstance(concept, dict):
        for coding in objects(concept.get("coding")):
            if isinstance(coding.get("code"), str) and coding["code"] in RISK_BY_LOINC:
                return RISK_BY_LOINC[str(coding["code"])]
            if str(coding.get("display", "")).strip().lower() in words:
                return str(coding["display"]).strip().lower()
        text = concept.get("text")
    else:
        text = element.get("valueString")
    text = str(text or "").strip().lower().removesuffix(" risk")
    return text if text in words else None


def score_of(reading: Found) -> tuple[str, int | None, int | None]:
    """(risk, total, psychosocial) of a reading."""
    if "answers" in reading.value:
        s = score(reading.value["answers"])
        return s.risk.value, s.total, s.psychosocial
    result = reading.value["result"]
    return result["risk"], result.get("total"), result.get("psychosocial")
