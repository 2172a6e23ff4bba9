"""The referral input format's own checks (domain/referral.py), in a module mypyc compiles (setup.py).

domain/referral.py holds the pydantic models, which mypyc cannot compile; the checks they call on every
referral (field syntax, the NHS number, the cross-field and date rules) are here, plain functions that run
the same as plain Python where the module is not compiled. Every referral read from a Bundle goes through
them, so they are a large part of reading one.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import nhs_number

from escape_fhir.domain.startback import score, startback_field_problems
from escape_fhir.errors import FieldError

ODS_CODE = re.compile(r"^[A-Z0-9]{1,9}$")
# UK postcode, outward and inward parts (GOV.UK / Royal Mail format; GIR 0AA included).
POSTCODE = re.compile(r"^(GIR 0AA|[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2})$")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: A SNOMED CT concept id, and a FHIR id (https://hl7.org/fhir/R4/datatypes.html#id): compiled once, as every
#: referral read from a Bundle checks them.
SCTID = re.compile(r"[1-9][0-9]{5,17}")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SPACES = re.compile(r"\s+")
_SPACES_AND_DASHES = re.compile(r"[\s-]")

#: The values of the sites of the knee/hip pathway (referral.KNEE_HIP_SITES; a test checks they agree).
KNEE_HIP_SITE_VALUES = frozenset({"left-knee", "right-knee", "left-hip", "right-hip", "knee", "hip"})
KNEE_HIP_ONLY = ("clinical_diagnosis_of_osteoarthritis", "needs_supervised_exercise")
BACK_ONLY = (
    "non_specific_low_back_pain",
    "recurrent_episodes",
    "radicular_pain",
    "able_to_join_group",
    "would_benefit_from_group",
    "wishes_to_take_part",
)
#: The wire name of each of them (``to_camel``; a test checks).
ANSWER_WIRE_NAMES = {
    "clinical_diagnosis_of_osteoarthritis": "clinicalDiagnosisOfOsteoarthritis",
    "needs_supervised_exercise": "needsSupervisedExercise",
    "non_specific_low_back_pain": "nonSpecificLowBackPain",
    "recurrent_episodes": "recurrentEpisodes",
    "radicular_pain": "radicularPain",
    "able_to_join_group": "ableToJoinGroup",
    "would_benefit_from_group": "wouldBenefitFromGroup",
    "wishes_to_take_part": "wishesToTakePart",
}
_REFERRER_SOURCES = frozenset({"gp", "msk-triage", "physiotherapy", "orthopaedic-surgeon", "other"})
_SITE_VALUES = KNEE_HIP_SITE_VALUES | {"lower-back"}
_KNEE_HIP = "knee-hip"
_BACK = "back"

#: Oldest plausible age on the referral date: older is a typing error (issue 9: "a patient aged 136").
MAX_AGE = 120
#: Clock skew allowed between the sender and us before a date counts as in the future.
CLOCK_SKEW = timedelta(days=1)


# Field syntax (the models' validators).


def iso_date_text(value: object) -> object:
    # pydantic also takes numbers and numeric strings as Unix times: a date must be written YYYY-MM-DD.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not ISO_DATE.match(value):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    return value


def postcode(value: str) -> str:
    compact = _SPACES.sub("", value.upper())
    normalised = f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact
    if not POSTCODE.match(normalised):
        raise ValueError(f"{value!r} is not a UK postcode")
    return normalised


def ods_code(value: str) -> str:
    code = value.strip().upper()
    if not ODS_CODE.match(code):
        raise ValueError(f"{value!r} is not an ODS code (1-9 letters or digits)")
    return code


def sctid(value: str) -> str:
    if not SCTID.fullmatch(value):
        raise ValueError(f"{value!r} is not a SNOMED CT concept id")
    return value


def fhir_id(value: str) -> str:
    # It becomes a FHIR id and identifier value: FHIR id syntax [A-Za-z0-9\-\.]{1,64}.
    if not FHIR_ID.fullmatch(value):
        raise ValueError("must be 1-64 letters, digits, '-' or '.'")
    return value


def nhs_number_digits(value: str) -> str:
    digits = _SPACES_AND_DASHES.sub("", value)
    if not (len(digits) == 10 and digits.isdigit()):
        raise ValueError(f"{value!r} is not a 10-digit NHS number")
    if not valid_ten_digits(digits):
        raise ValueError(f"{value!r} fails the NHS number check digit (Modulus 11)")
    return digits


def valid_ten_digits(digits: str) -> bool:
    """``nhs_number.is_valid(digits)`` for a string of ten characters that ``str.isdigit`` accepts.

    For ten ASCII digits is_valid's ``standardise_format`` returns them unchanged (so its cost, two regular
    expressions, is skipped here), and outside the Scottish CHI range what remains of is_valid is the
    package's own check digit (``calculate_checksum``) against the tenth digit. Anything else (other Unicode
    digits, a number in the CHI range with its date rule) goes to is_valid itself. tests/domain checks this
    agrees with is_valid over ten-digit strings."""
    if not digits.isascii() or nhs_number.REGION_SCOTLAND.contains_number(digits):
        return bool(nhs_number.is_valid(digits))
    return bool(nhs_number.calculate_checksum(digits[:9]) == int(digits[9]))


def today_of(context: object) -> date:
    """The date "today" for the date checks: ``load_referral(..., today=)`` (tests, replays) or the clock."""
    given = context.get("today") if isinstance(context, dict) else None
    return given if isinstance(given, date) else date.today()


# Checks across fields.


def referral_problems(referral: Any, today: date) -> list[FieldError]:
    """The cross-field problems of a validated Referral: :func:`consistency_problems` of its JSON form and its
    dates (read from the model's attributes, without writing that form), then a STarT Back result that does
    not match the score of the answers given with it. tests/domain checks both ways agree."""
    problems: list[FieldError] = []
    pathway, source = str(referral.pathway), str(referral.source)
    if referral.referrer is None and source in _REFERRER_SOURCES:
        problems.append(FieldError("referrer", "required unless source is self-referral"))
    sites = [str(s) for s in referral.affected_sites]
    start_back, result = referral.start_back, referral.start_back_result
    misplaced = _pathway_problems(pathway, sites, start_back is not None, result is not None, problems)
    answers: dict[str, Any] = referral.eligibility.__dict__
    for f in misplaced:
        if answers[f] is not None:
            problems.append(
                FieldError(f"eligibility.{ANSWER_WIRE_NAMES[f]}", f"does not apply to the {pathway} pathway")
            )
    if result is not None and pathway == _BACK:
        problems.extend(_result_problems(result.total, result.psychosocial, result.risk))
    problems.extend(
        _date_problems(referral.patient.birth_date, referral.referral_date, referral.symptom_onset_date, today)
    )
    if start_back is not None and result is not None:
        computed = score(start_back)
        if (result.risk, result.total, result.psychosocial) != (
            computed.risk.value,
            computed.total if result.total is not None else None,
            computed.psychosocial if result.psychosocial is not None else None,
        ):
            problems.append(
                FieldError(
                    "startBackResult",
                    f"does not match the score of startBack (total {computed.total}, "
                    f"psychosocial {computed.psychosocial}, risk {computed.risk.value})",
                )
            )
    return problems


def _pathway_problems(
    pathway: object, sites: list[str], has_start_back: bool, has_result: bool, problems: list[FieldError]
) -> tuple[str, ...]:
    """Adds what does not belong to the pathway (STarT Back on knee/hip, sites of the other pathway) to
    ``problems``; returns the eligibility answers that do not apply to it. Shared by the model's and the JSON
    form's checks, so both report the same problems in the same order."""
    if pathway == _KNEE_HIP:
        for key, present in (("startBack", has_start_back), ("startBackResult", has_result)):
            if present:
                problems.append(FieldError(key, "STarT Back applies to the back pathway only"))
        wrong = [s for s in sites if s not in KNEE_HIP_SITE_VALUES]
        if wrong:
            problems.append(FieldError("affectedSites", f"{', '.join(wrong)} is not a knee or hip"))
        return BACK_ONLY
    if pathway == _BACK:
        wrong = [s for s in sites if s in KNEE_HIP_SITE_VALUES]
        if wrong:
            problems.append(FieldError("affectedSites", f"{', '.join(wrong)} is not on the back pathway"))
        return KNEE_HIP_ONLY
    return ()


#: The dates of a referral: birth, referral and symptom onset.
Dates = tuple[date | None, date | None, date | None]


def consistency_problems(
    data: dict[str, Any], today: date | None = None, *, dates: Dates | None = None
) -> list[FieldError]:
    """Checks across fields, on the JSON form, so that they run even when some field is invalid.

    ``dates``: the dates already read (a validated model), else they are read from ``data``."""
    problems: list[FieldError] = []
    pathway, source = data.get("pathway"), data.get("source")
    if data.get("referrer") is None and source in _REFERRER_SOURCES:
        problems.append(FieldError("referrer", "required unless source is self-referral"))
    sites = [s for s in data.get("affectedSites") or [] if s in _SITE_VALUES]
    eligibility = data.get("eligibility")
    answers: dict[Any, Any] = eligibility if isinstance(eligibility, dict) else {}
    misplaced = _pathway_problems(
        pathway, sites, data.get("startBack") is not None, data.get("startBackResult") is not None, problems
    )
    if answers:
        for f in misplaced:
            wire = ANSWER_WIRE_NAMES[f]
            if answers.get(wire) is not None:
                problems.append(FieldError(f"eligibility.{wire}", f"does not apply to the {pathway} pathway"))
    result = data.get("startBackResult")
    if isinstance(result, dict) and pathway == _BACK:
        problems.extend(_startback_result_problems(result))
    if dates is None:
        problems.extend(date_problems(data, today or date.today()))
    else:
        problems.extend(_date_problems(dates[0], dates[1], dates[2], today or date.today()))
    return problems


def _startback_result_problems(result: dict[str, Any]) -> list[FieldError]:
    """Keele's rule on a supplied result. A value out of range or of the wrong type is left to the field's own
    validator, which names it already."""
    return _result_problems(result.get("total"), result.get("psychosocial"), result.get("risk"))


def _result_problems(total: object, psychosocial: object, risk: object) -> list[FieldError]:
    in_range = all(v is None or (type(v) is int and 0 <= v <= top) for v, top in ((total, 9), (psychosocial, 5)))
    if not in_range or risk not in ("low", "medium", "high"):
        return []
    return [
        FieldError(f"startBackResult.{name}", message)
        for name, message in startback_field_problems(total, psychosocial, risk)
    ]


def _date_at(data: dict[str, Any], path: str) -> date | None:
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not (isinstance(value, str) and ISO_DATE.match(value)):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def date_problems(data: dict[str, Any], today: date) -> list[FieldError]:
    """Dates that cannot be true: in the future, out of order, or an age over :data:`MAX_AGE`.

    A referral built on such a date would be assessed on a wrong age or duration, so it is refused at input
    rather than assessed (issue 9; docs/clinical-safety.md).
    """
    birth, referred = _date_at(data, "patient.birthDate"), _date_at(data, "referralDate")
    return _date_problems(birth, referred, _date_at(data, "symptomOnsetDate"), today)


def _date_problems(birth: date | None, referred: date | None, onset: date | None, today: date) -> list[FieldError]:
    latest = today + CLOCK_SKEW
    problems: list[FieldError] = []
    for path, value in (("patient.birthDate", birth), ("referralDate", referred), ("symptomOnsetDate", onset)):
        if value is not None and value > latest:
            problems.append(FieldError(path, f"{value} is in the future (today is {today})"))
    if birth and referred and birth > referred:
        problems.append(FieldError("patient.birthDate", f"{birth} is after the referral date {referred}"))
    elif birth and referred and referred <= latest and age_on(birth, referred) > MAX_AGE:
        age = age_on(birth, referred)
        problems.append(
            FieldError(
                "patient.birthDate", f"{birth} gives an age of {age} on {referred}: over {MAX_AGE} is not plausible"
            )
        )
    if onset and referred and onset > referred:
        problems.append(FieldError("symptomOnsetDate", f"{onset} is after the referral date {referred}"))
    if onset and birth and onset < birth:
        problems.append(FieldError("symptomOnsetDate", f"{onset} is before the birth date {birth}"))
    return problems


def age_on(birth: date, on: date) -> int:
    """Age in whole years on a date (a 29 February birthday falls on 1 March in a common year)."""
    years = on.year - birth.year
    return years - 1 if (on.month, on.day) < (birth.month, birth.day) else years
