"""The invariants of R4's resources and data types met in referral Bundles, checked directly on the JSON.

The companion of :mod:`.native` (which has the base element, resource and Bundle rules and the project's
own): the rules of every resource type and data type found in the project's examples, the UK Core and BaRS
examples and the sender corpus (Questionnaire items, Period, Timing, Quantity and its kinds, Attachment,
narrative, Composition, List, Consent, AllergyIntolerance, Appointment, MedicationDispense, Task...).
Each function says what fhirpathpy says of the expression it is keyed by, under FHIRPath's three-valued
logic (https://hl7.org/fhirpath/N1/#boolean-logic): an empty result passes, so most rules fail only when
every member they read is there. As in :mod:`.native`, every operand the engine evaluates is read (an odd
shape raises :class:`~.fhirpath_reads.Defer` whatever the other operands say), and the engine decides
where a shape is not modelled: comparisons of date-times of different precision or form, quantities with
units (``rng-2``), ``resolve()`` (``ctm-1``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from escape_fhir.validation.fhirpath_reads import (
    Defer,
    choice,
    choice_empty,
    coded,
    exists,
    objects,
    resolve_one,
    string,
)
from escape_fhir.validation.narrative import narrative_ok

__all__ = ["RESOURCE_NATIVE", "RESOURCE_NEEDS_PLACE"]

Json = dict[str, Any]
Native = Callable[[Any, Any, Any], bool]
_UCUM = "http://unitsofmeasure.org"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


# --- combinators for the common shapes ------------------------------------------------------------------------


def _empty_or_exists(first: str, second: str) -> Native:
    """``<first>.empty() or <second>.exists()``."""
    return lambda node, resource, container: not exists(node, first) or exists(node, second)


def _empty_or_empty(first: str, second: str) -> Native:
    """``<first>.empty() or <second>.empty()``."""
    return lambda node, resource, container: not (exists(node, first) and exists(node, second))


def _any_exists(*names: str) -> Native:
    """``<a>.exists() or <b>.exists() or ...``."""
    return lambda node, resource, container: any(exists(node, name) for name in names)


def _exists_xor(first: str, second: str) -> Native:
    """``<first>.exists() xor <second>.exists()`` (and ``!=``)."""
    return lambda node, resource, container: exists(node, first) != exists(node, second)


def _primitive(node: Any, name: str) -> Any:
    """The value of a single primitive member (None when absent); a companion or an array: the engine's."""
    if not isinstance(node, dict) or "_" + name in node:
        raise Defer
    value = node.get(name)
    if isinstance(value, dict | list):
        raise Defer
    return value


def _number(node: Any, name: str) -> int | Decimal | float | None:
    value = _primitive(node, name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | Decimal | float)):
        raise Defer
    return value


def _count(node: Any, name: str) -> int:
    """``<name>.count()`` of a complex member."""
    return len(objects(node, name))


# --- Quantity and its kinds (datatypes.html#Quantity) ------------------------------------------------------------


def _ucum_quantity(node: Any, resource: Any, container: Any) -> bool:
    """dis-1: ``(code.exists() or value.empty()) and (system.empty() or system = %ucum)``."""
    system = string(node, "system")
    return (exists(node, "code") or not exists(node, "value")) and (system is None or system == _UCUM)


def _age_1(node: Any, resource: Any, container: Any) -> bool:
    """``... and (value.empty() or value.hasValue().not() or value > 0)``: an age is positive."""
    value = _number(node, "value")
    return _ucum_quantity(node, resource, container) and (value is None or value > 0)


def _drt_1(node: Any, resource: Any, container: Any) -> bool:
    """``code.exists() implies ((system = %ucum) and value.exists())``: with no system the ``=`` is empty,
    which a value turns into an empty (passing) result and no value into false."""
    system = string(node, "system")
    has_value = exists(node, "value")
    if not exists(node, "code") or not has_value:
        return not exists(node, "code")
    return system is None or system == _UCUM


def _cnt_3(node: Any, resource: Any, container: Any) -> bool:
    """``... and (code.empty() or code = '1') and (value.empty() or value.hasValue().not() or
    value.toString().contains('.').not())``: a count is a whole number of the unit ``1``."""
    code = string(node, "code")
    value = _number(node, "value")
    if isinstance(value, Decimal | float):
        raise Defer  # the engine's toString() of a decimal decides
    return _ucum_quantity(node, resource, container) and code in (None, "1")


# --- Period, Range, date-time comparisons ----------------------------------------------------------------------

_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def _at_most(first: Any, second: Any) -> bool:
    """``first <= second`` for two date-times of the same form: dates of one precision, or instants with a
    time zone, to the second or with fractions of as many digits (fhirpathpy does not take ``.5`` for
    ``.500``). Anything else (precisions that differ, no zone): the engine's."""
    if not isinstance(first, str) or not isinstance(second, str):
        raise Defer
    if _DATE.fullmatch(first) and _DATE.fullmatch(second) and len(first) == len(second):
        return first <= second
    instants = _INSTANT.fullmatch(first), _INSTANT.fullmatch(second)
    if instants[0] and instants[1] and len(instants[0][1] or "") == len(instants[1][1] or ""):
        return datetime.fromisoformat(first) <= datetime.fromisoformat(second)
    raise Defer


def _per_1(node: Any, resource: Any, container: Any) -> bool:
    """``start.hasValue().not() or end.hasValue().not() or (start <= end)``."""
    start, end = _primitive(node, "start"), _primitive(node, "end")
    if start is None or end is None:
        return True
    return _at_most(start, end)


def _not_before(later: str, earlier: str) -> Native:
    """``<later>.empty() or <earlier>.empty() or <later> >= <earlier>`` (and ``.exists().not()``)."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        first, second = _primitive(node, later), _primitive(node, earlier)
        if first is None or second is None:
            return True
        return _at_most(second, first)

    return check


def _rng_2(node: Any, resource: Any, container: Any) -> bool:
    """``low.empty() or high.empty() or (low <= high)``: comparing quantities (units) is the engine's."""
    if exists(node, "low") and exists(node, "high"):
        raise Defer
    return True


# --- Timing.repeat (datatypes.html#Timing) ---------------------------------------------------------------------


def _not_negative(name: str) -> Native:
    """``<name>.exists() implies <name> >= 0``."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        value = _number(node, name)
        return value is None or value >= 0

    return check


def _tim_9(node: Any, resource: Any, container: Any) -> bool:
    """``offset.empty() or (when.exists() and when.select($this in ('C' | 'CM' | 'CD' | 'CV')).allFalse())``:
    an offset only from an event that is not a meal."""
    if not isinstance(node, dict) or "_when" in node:
        raise Defer
    when = node.get("when")
    codes = when if isinstance(when, list) else [] if when is None else [when]
    if not all(isinstance(c, str) for c in codes):
        raise Defer
    meal = any(c in ("C", "CM", "CD", "CV") for c in codes)
    return not exists(node, "offset") or (bool(codes) and not meal)


# --- Questionnaire (questionnaire.html#invs) ------------------------------------------------------------------

_MAX_LENGTH_TYPES = frozenset({"boolean", "decimal", "integer", "string", "text", "url", "open-choice"})
_OPTION_TYPES = frozenset({"choice", "open-choice", "decimal", "integer", "date", "dateTime", "time", "string"})
_NAME = re.compile("[A-Z]([A-Za-z0-9_]){0,254}", re.DOTALL)


def _item_type(node: Any) -> str | None:
    return string(node, "type")


def _que_1(node: Any, resource: Any, container: Any) -> bool:
    """``(type='group' implies item.empty().not()) and (type='display' implies item.empty())``: a group has
    items, a display item none (with no type both ``implies`` are empty or true)."""
    kind, has_items = _item_type(node), exists(node, "item")
    return not ((kind == "group" and not has_items) or (kind == "display" and has_items))


def _not_display_or_none(*names: str) -> Native:
    """``type!='display' or (<a>.empty() and ...)``: a display item has none of these."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        present = [exists(node, name) for name in names]
        return _item_type(node) != "display" or not any(present)

    return check


def _que_5(node: Any, resource: Any, container: Any) -> bool:
    """``(type = 'choice' or ... or type = 'quantity') or (answerValueSet.empty() and answerOption.empty())``."""
    kind = _item_type(node)
    options = exists(node, "answerValueSet") or exists(node, "answerOption")
    return kind is None or kind in _OPTION_TYPES or kind == "quantity" or not options


def _que_8(node: Any, resource: Any, container: Any) -> bool:
    """``(type!='group' and type!='display') or initial.empty()``."""
    return _item_type(node) not in ("group", "display") or not exists(node, "initial")


def _que_10(node: Any, resource: Any, container: Any) -> bool:
    """``(type in ('boolean' | ... | 'open-choice')) or maxLength.empty()``."""
    kind = _item_type(node)
    return kind is None or kind in _MAX_LENGTH_TYPES or not exists(node, "maxLength")


def _que_12(node: Any, resource: Any, container: Any) -> bool:
    """``enableWhen.count() > 2 implies enableBehavior.exists()``."""
    return _count(node, "enableWhen") <= 2 or exists(node, "enableBehavior")


def _que_13(node: Any, resource: Any, container: Any) -> bool:
    """``repeats=true or initial.count() <= 1``: with no repeats the ``=`` is empty, so only ``false``
    (or another value) with several initial values fails."""
    repeats = _primitive(node, "repeats")
    if repeats is not None and not isinstance(repeats, bool):
        raise Defer
    return repeats is not False or _count(node, "initial") <= 1


def _que_2(node: Any, resource: Any, container: Any) -> bool:
    """``descendants().linkId.isDistinct()``: every linkId below the Questionnaire (contained resources
    included, as the engine reads them) is distinct."""
    found: list[str] = []
    _link_ids(node, found, top=True)
    return len(found) == len(set(found))


def _link_ids(value: Any, found: list[str], top: bool = False) -> None:
    if isinstance(value, dict):
        if not top:
            if "_linkId" in value:
                raise Defer
            link = value.get("linkId")
            if isinstance(link, list) or (link is not None and not isinstance(link, str)):
                raise Defer
            if link is not None:
                found.append(link)
        for item in value.values():
            _link_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _link_ids(item, found)


def _que_7(node: Any, resource: Any, container: Any) -> bool:
    """``operator = 'exists' implies (answer is Boolean)``."""
    operator = string(node, "operator")
    answer = choice(node, "Questionnaire.item.enableWhen.answer", "answer")
    if answer is not None and isinstance(answer[1], list):
        raise Defer  # ``is`` on several items raises in the engine
    return operator != "exists" or answer is None or answer[0] == "Boolean"


def _name_matches(node: Any, resource: Any, container: Any) -> bool:
    """``name.matches('[A-Z]([A-Za-z0-9_]){0,254}')``: fhirpathpy searches (not a whole match) with DOTALL."""
    name = _primitive(node, "name")
    if name is None:
        return True
    if not isinstance(name, str):
        raise Defer
    return _NAME.search(name) is not None


# --- other resources -----------------------------------------------------------------------------------------


def _verification_is_error(node: Any) -> bool:
    return any(coded(v, _ALLERGY_VERIFICATION, "entered-in-error") for v in objects(node, "verificationStatus"))


def _app_3(node: Any, resource: Any, container: Any) -> bool:
    """``(start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))``."""
    status = string(node, "status")
    timed = exists(node, "start") and exists(node, "end")
    return timed or status is None or status in ("proposed", "cancelled", "waitlist")


def _app_4(node: Any, resource: Any, container: Any) -> bool:
    """``Appointment.cancelationReason.exists() implies (Appointment.status='noshow' or ...='cancelled')``."""
    if not isinstance(node, dict) or node.get("resourceType") != "Appointment":
        raise Defer
    status = string(node, "status")
    return not exists(node, "cancelationReason") or status in (None, "noshow", "cancelled")


def _mode_or_no_entry_member(mode: str, member: str) -> Native:
    """lst-2/lst-3: ``mode = '<mode>' or entry.<member>.empty()``: with no mode, the ``=`` is empty."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        found = string(node, "mode")
        return found in (None, mode) or not any(exists(e, member) for e in objects(node, "entry"))

    return check


def _not_home(node: Any, resource: Any, container: Any) -> bool:
    """org-2/org-3: ``where(use = 'home').empty()`` on an address or telecom of an Organization."""
    return string(node, "use") != "home"


def _consent_scope(code: str) -> Native:
    """ppc-2..5: ``patient.exists() or scope.coding.where(system='something' and code=<code>).exists().not()``."""

    def check(node: Any, resource: Any, container: Any) -> bool:
        scoped = any(coded(s, "something", code) for s in objects(node, "scope"))
        return exists(node, "patient") or not scoped

    return check


def _rat_1(node: Any, resource: Any, container: Any) -> bool:
    """``(numerator.empty() xor denominator.exists()) and (numerator.exists() or extension.exists())``."""
    numerator, denominator = exists(node, "numerator"), exists(node, "denominator")
    return (not numerator) != denominator and (numerator or exists(node, "extension"))


def _fhs_1(node: Any, resource: Any, container: Any) -> bool:
    """``age.empty() or born.empty()`` (both choices)."""
    age = choice_empty(node, "FamilyMemberHistory.age", "age")
    return age or choice_empty(node, "FamilyMemberHistory.born", "born")


def _fhs_2(node: Any, resource: Any, container: Any) -> bool:
    """``age.exists() or estimatedAge.empty()``."""
    return not choice_empty(node, "FamilyMemberHistory.age", "age") or not exists(node, "estimatedAge")


def _mad_1(node: Any, resource: Any, container: Any) -> bool:
    """``dose.exists() or rate.exists()`` (rate is a choice)."""
    rate = not choice_empty(node, "MedicationAdministration.dosage.rate", "rate")
    return exists(node, "dose") or rate


def _trd_3(node: Any, resource: Any, container: Any) -> bool:
    """``(type = 'named-event' implies name.exists()) and (type = 'periodic' implies timing.exists()) and
    (type.startsWith('data-') implies data.exists())``."""
    kind = string(node, "type")
    timing = not choice_empty(node, "TriggerDefinition.timing", "timing")
    name, data = exists(node, "name"), exists(node, "data")
    if kind is None:
        return True
    return (kind != "named-event" or name) and (kind != "periodic" or timing) and (not kind.startswith("data-") or data)


def _trd_1(node: Any, resource: Any, container: Any) -> bool:
    """``data.empty() or timing.empty()``."""
    return not exists(node, "data") or choice_empty(node, "TriggerDefinition.timing", "timing")


def _ctm_1(node: Any, resource: Any, container: Any) -> bool:
    """``onBehalfOf.exists() implies (member.resolve().iif(empty(), true, ofType(Practitioner).exists()))``: a
    member on behalf of an organization is a Practitioner, when the reference resolves (``resolve()`` as
    :func:`.fhirpath_reads.resolve_one`: contained resources, or the entries of a Bundle ``%rootResource``)."""
    refs = [m.get("reference") if "_reference" not in m else _defer() for m in objects(node, "member")]
    try:
        targets = [t for ref in refs if ref and (t := resolve_one(ref, resource, container)) is not None]
    except (AttributeError, TypeError):  # contained or entries of an odd shape: the engine fails on them too
        raise Defer from None
    return (
        not exists(node, "onBehalfOf") or not targets or any(t.get("resourceType") == "Practitioner" for t in targets)
    )


def _defer() -> Any:
    raise Defer


def _narrative(node: Any, resource: Any, container: Any) -> bool:
    """txt-1/txt-2: ``htmlChecks()`` on ``Narrative.div`` (:func:`.narrative.narrative_ok`)."""
    if not isinstance(node, str):
        raise Defer
    return narrative_ok(node)


#: Exact expression text -> the same check on the JSON.
RESOURCE_NATIVE: dict[str, Native] = {
    # narrative.html#Narrative
    "htmlChecks()": _narrative,
    # datatypes.html: Quantity and its kinds, Attachment, Period, Range, Ratio, Timing
    "code.empty() or system.exists()": _empty_or_exists("code", "system"),
    "comparator.empty()": lambda node, resource, container: not exists(node, "comparator"),
    "(code.exists() or value.empty()) and (system.empty() or system = %ucum)": _ucum_quantity,
    "(code.exists() or value.empty()) and (system.empty() or system = %ucum) and (value.empty() or "
    "value.hasValue().not() or value > 0)": _age_1,
    "code.exists() implies ((system = %ucum) and value.exists())": _drt_1,
    "(code.exists() or value.empty()) and (system.empty() or system = %ucum) and (code.empty() or code = '1') and "
    "(value.empty() or value.hasValue().not() or value.toString().contains('.').not())": _cnt_3,
    "data.empty() or contentType.exists()": _empty_or_exists("data", "contentType"),
    "start.hasValue().not() or end.hasValue().not() or (start <= end)": _per_1,
    "low.empty() or high.empty() or (low <= high)": _rng_2,
    "(numerator.empty() xor denominator.exists()) and (numerator.exists() or extension.exists())": _rat_1,
    "duration.empty() or durationUnit.exists()": _empty_or_exists("duration", "durationUnit"),
    "period.empty() or periodUnit.exists()": _empty_or_exists("period", "periodUnit"),
    "duration.exists() implies duration >= 0": _not_negative("duration"),
    "period.exists() implies period >= 0": _not_negative("period"),
    "periodMax.empty() or period.exists()": _empty_or_exists("periodMax", "period"),
    "durationMax.empty() or duration.exists()": _empty_or_exists("durationMax", "duration"),
    "countMax.empty() or count.exists()": _empty_or_exists("countMax", "count"),
    "offset.empty() or (when.exists() and when.select($this in ('C' | 'CM' | 'CD' | 'CV')).allFalse())": _tim_9,
    "timeOfDay.empty() or when.empty()": _empty_or_empty("timeOfDay", "when"),
    # metadatatypes.html: DataRequirement, Expression, TriggerDefinition
    "path.exists() xor searchParam.exists()": _exists_xor("path", "searchParam"),
    "expression.exists() or reference.exists()": _any_exists("expression", "reference"),
    "data.empty() or timing.empty()": _trd_1,
    "condition.exists() implies data.exists()": _empty_or_exists("condition", "data"),
    "(type = 'named-event' implies name.exists()) and (type = 'periodic' implies timing.exists()) and "
    "(type.startsWith('data-') implies data.exists())": _trd_3,
    # questionnaire.html, and the name rule of the canonical resources
    "name.matches('[A-Z]([A-Za-z0-9_]){0,254}')": _name_matches,
    "descendants().linkId.isDistinct()": _que_2,
    "(type='group' implies item.empty().not()) and (type.trace('type')='display' implies item.trace('item')"
    ".empty())": _que_1,
    "type!='display' or code.empty()": _not_display_or_none("code"),
    "answerOption.empty() or answerValueSet.empty()": _empty_or_empty("answerOption", "answerValueSet"),
    "(type ='choice' or type = 'open-choice' or type = 'decimal' or type = 'integer' or type = 'date' or type = "
    "'dateTime' or type = 'time' or type = 'string' or type = 'quantity') or (answerValueSet.empty() and "
    "answerOption.empty())": _que_5,
    "type!='display' or (required.empty() and repeats.empty())": _not_display_or_none("required", "repeats"),
    "operator = 'exists' implies (answer is Boolean)": _que_7,
    "(type!='group' and type!='display') or initial.empty()": _que_8,
    "type!='display' or readOnly.empty()": _not_display_or_none("readOnly"),
    "(type in ('boolean' | 'decimal' | 'integer' | 'string' | 'text' | 'url' | 'open-choice')) or "
    "maxLength.empty()": _que_10,
    "answerOption.empty() or initial.empty()": _empty_or_empty("answerOption", "initial"),
    "enableWhen.count() > 2 implies enableBehavior.exists()": _que_12,
    "repeats=true or initial.count() <= 1": _que_13,
    # allergyintolerance.html, appointment.html, auditevent.html, careplan.html, composition.html, consent.html,
    # condition.html, familymemberhistory.html, immunization.html, list.html, medicationadministration.html,
    # medicationdispense.html, observation.html, organization.html, patient.html, requestgroup.html, task.html
    "verificationStatus.coding.where(system = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification'"
    " and code = 'entered-in-error').exists() or clinicalStatus.exists()": lambda node, resource, container: (
        _verification_is_error(node) or exists(node, "clinicalStatus")
    ),
    "verificationStatus.coding.where(system = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification'"
    " and code = 'entered-in-error').empty() or clinicalStatus.empty()": lambda node, resource, container: (
        not _verification_is_error(node) or not exists(node, "clinicalStatus")
    ),
    "type.exists() or actor.exists()": _any_exists("type", "actor"),
    "start.exists() = end.exists()": lambda node, resource, container: exists(node, "start") == exists(node, "end"),
    "(start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))": _app_3,
    "Appointment.cancelationReason.exists() implies (Appointment.status='noshow' or Appointment.status="
    "'cancelled')": _app_4,
    "name.empty() or query.empty()": _empty_or_empty("name", "query"),
    "detail.empty() or reference.empty()": _empty_or_empty("detail", "reference"),
    "text.exists() or entry.exists() or section.exists()": _any_exists("text", "entry", "section"),
    "emptyReason.empty() or entry.empty()": _empty_or_empty("emptyReason", "entry"),
    "policy.exists() or policyRule.exists()": _any_exists("policy", "policyRule"),
    **{
        "patient.exists() or scope.coding.where(system='something' and code='"
        + code
        + "').exists().not()": _consent_scope(code)
        for code in ("patient-privacy", "research", "adr", "treatment")
    },
    "summary.exists() or assessment.exists()": _any_exists("summary", "assessment"),
    "code.exists() or detail.exists()": _any_exists("code", "detail"),
    "age.empty() or born.empty()": _fhs_1,
    "age.exists() or estimatedAge.empty()": _fhs_2,
    "documentType.exists() or reference.exists()": _any_exists("documentType", "reference"),
    "mode = 'changes' or entry.deleted.empty()": _mode_or_no_entry_member("changes", "deleted"),
    "mode = 'working' or entry.date.empty()": _mode_or_no_entry_member("working", "date"),
    "dose.exists() or rate.exists()": _mad_1,
    "whenHandedOver.empty() or whenPrepared.empty() or whenHandedOver >= whenPrepared": _not_before(
        "whenHandedOver", "whenPrepared"
    ),
    "low.exists() or high.exists() or text.exists()": _any_exists("low", "high", "text"),
    "where(use = 'home').empty()": _not_home,
    "name.exists() or telecom.exists() or address.exists() or organization.exists()": _any_exists(
        "name", "telecom", "address", "organization"
    ),
    "resource.exists() != action.exists()": _exists_xor("resource", "action"),
    "onBehalfOf.exists() implies (member.resolve().iif(empty(), true, ofType(Practitioner).exists()))": _ctm_1,
    "lastModified.exists().not() or authoredOn.exists().not() or lastModified >= authoredOn": _not_before(
        "lastModified", "authoredOn"
    ),
}

#: The functions that read ``%resource`` or ``%rootResource``.
RESOURCE_NEEDS_PLACE = frozenset({_ctm_1})
