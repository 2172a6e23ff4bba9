"""The R4 vital-signs profiles, selected by an Observation's LOINC code (R4 observation-vitalsigns.html).

R4 says an Observation whose code is one of the vital-signs LOINC codes SHALL conform to that sign's profile,
whether or not it claims it, and the reference validator checks it so. The profiles are not in the shipped
model; what they require is (the table of ``scripts/generate_r4_model.py``, with the unit value sets of the
R4 definitions, in ``r4-terminology.json.gz``):

* from the ``vitalsigns`` base profile: a ``category`` coding ``observation-category#vital-signs``, a
  ``subject``, an ``effective[x]`` (dateTime or Period) and, without ``component`` or ``hasMember``, a value
  or a ``dataAbsentReason`` (vs-2);
* from each sign's profile (not the two panels'): a ``valueQuantity`` in UCUM (``system`` fixed to
  ``http://unitsofmeasure.org``) with a ``value`` and a ``code``, and the unit: fixed (heart and respiratory
  rate ``/min``, BMI ``kg/m2``, oxygen saturation ``%``, blood pressure components ``mm[Hg]``) or required
  from a value set (body length, weight, temperature units).

Messages follow the reference validator's wording, the profile named as ``url|4.0.1``.
"""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.validation.coredata import core_terminology
from escape_fhir.validation.ucum import UCUM

__all__ = ["check_vital_signs"]

Json = dict[str, Any]
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_R4 = "4.0.1"


def check_vital_signs(obs: Json, loc: str) -> list[Issue]:
    """Issues of one Observation against the vital-signs profile its LOINC code selects (none when no code does)."""
    rule = _rule(obs.get("code"))
    if rule is None:
        return []
    profile = f"{rule['profile']}|{_R4}"
    issues = _base_profile(obs, loc, profile)
    value = obs.get("valueQuantity")
    if isinstance(value, dict) and rule.get("unit") is not None:  # the panels' profiles set no unit
        issues += _quantity(value, rule["unit"], f"{loc}.valueQuantity", profile)
    components = rule.get("components") or {}
    for i, component in enumerate(_list(obs.get("component"))):
        component_rule = _loinc_rule(component.get("code"), components)
        quantity = component.get("valueQuantity")
        if component_rule is not None and isinstance(quantity, dict):
            issues += _quantity(quantity, component_rule, f"{loc}.component[{i}].valueQuantity", profile)
    return issues


def _rule(code: Any) -> Json | None:
    found = _loinc_rule(code, core_terminology().vital_signs)
    return found if isinstance(found, dict) else None


def _loinc_rule(code: Any, table: dict[str, Any]) -> Any:
    """The table entry of the first LOINC coding of a CodeableConcept that has one."""
    for coding in _list(code.get("coding") if isinstance(code, dict) else None):
        if coding.get("system") == LOINC and isinstance(coding.get("code"), str) and coding["code"] in table:
            return table[coding["code"]]
    return None


def _base_profile(obs: Json, loc: str, profile: str) -> list[Issue]:
    issues: list[Issue] = []

    def missing(what: str, where: str) -> None:
        issues.append(Issue("error", "required", f"{what} is required by the profile {profile}", where))

    categories = [c for cc in _list(obs.get("category")) for c in _list(cc.get("coding"))]
    if not any(c.get("system") == CATEGORY and c.get("code") == "vital-signs" for c in categories):
        missing(f"a category {CATEGORY}#vital-signs", f"{loc}.category")
    if "subject" not in obs:
        missing("a subject", f"{loc}.subject")
    if "effectiveDateTime" not in obs and "effectivePeriod" not in obs:
        missing("an effective[x] (dateTime or Period)", f"{loc}.effective")
    has_value = any(k.startswith("value") for k in obs) or "dataAbsentReason" in obs
    if not has_value and not obs.get("component") and not obs.get("hasMember"):
        message = (
            "vs-2: if there is no component or hasMember element then either a value[x] or a data absent reason "
            f"must be present (from the profile {profile})"
        )
        issues.append(Issue("error", "invariant", message, loc))
    return issues


def _quantity(quantity: Json, unit: Any, loc: str, profile: str) -> list[Issue]:
    """A vital sign's Quantity: UCUM, a value and a code, and the code the sign's profile allows."""
    issues: list[Issue] = []
    system, code = quantity.get("system"), quantity.get("code")
    if system != UCUM:
        message = f"Value is {system!r} but is fixed to '{UCUM}' in the profile {profile}"
        issues.append(Issue("error", "value", message, f"{loc}.system"))
    for member in ("value", "code"):
        if member not in quantity:
            message = f"minimum required = 1, but only found 0 (from {profile})"
            issues.append(Issue("error", "required", message, f"{loc}.{member}"))
    if not isinstance(code, str) or not isinstance(unit, list):
        return issues
    kind, expected = unit
    if kind == "fixed" and code != expected:
        message = f"Value is '{code}' but is fixed to '{expected}' in the profile {profile}"
        issues.append(Issue("error", "value", message, f"{loc}.code"))
    elif kind == "valueSet":
        value_set = core_terminology().unit_value_sets[expected]
        if code not in value_set["codes"] or system != UCUM:
            message = (
                f"The value provided ('{code}') was not found in the value set '{value_set['name']}' "
                f"({expected}|{_R4}), and a code is required from this value set"
            )
            issues.append(Issue("error", "code-invalid", message, f"{loc}.code"))
    return issues


def _list(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
