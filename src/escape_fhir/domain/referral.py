"""The referral input format: what a non-FHIR system (a site's web form, a GP export) sends us.

The JSON Schema in ``schemas/referral.schema.json`` is generated from these models
(``python scripts/generate_examples.py`` regenerates it; a test checks it is current).
Field names are camelCase on the wire.
"""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import nhs_number
import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from escape_fhir.domain.startback import parse_answers, score, startback_field_problems
from escape_fhir.errors import FieldError, ReferralInputError, ScoringInputError


class Pathway(StrEnum):
    KNEE_HIP = "knee-hip"
    BACK = "back"


class ReferralSource(StrEnum):
    GP = "gp"
    MSK_TRIAGE = "msk-triage"
    PHYSIOTHERAPY = "physiotherapy"
    ORTHOPAEDIC_SURGEON = "orthopaedic-surgeon"
    SELF_REFERRAL = "self-referral"
    OTHER = "other"


class Site(StrEnum):
    LEFT_KNEE = "left-knee"
    RIGHT_KNEE = "right-knee"
    LEFT_HIP = "left-hip"
    RIGHT_HIP = "right-hip"
    LOWER_BACK = "lower-back"
    # A sender may name the joint without its side (a knee osteoarthritis code, "knee region structure").
    KNEE = "knee"
    HIP = "hip"


KNEE_HIP_SITES = frozenset({Site.LEFT_KNEE, Site.RIGHT_KNEE, Site.LEFT_HIP, Site.RIGHT_HIP, Site.KNEE, Site.HIP})
#: The joints each osteoarthritis code is about: a code counts only for an affected joint of its kind.
OSTEOARTHRITIS_JOINTS = {
    "239873007": frozenset({Site.LEFT_KNEE, Site.RIGHT_KNEE, Site.KNEE}),
    "239872002": frozenset({Site.LEFT_HIP, Site.RIGHT_HIP, Site.HIP}),
}

#: SNOMED CT codes the rules recognise (nhs-standards.md section 5).
OSTEOARTHRITIS_CODES = {"239873007": "Osteoarthritis of knee", "239872002": "Osteoarthritis of hip"}
LOW_BACK_PAIN_CODES = {
    "279039007": "Low back pain",
    "278860009": "Chronic low back pain",
    "161891005": "Backache",
    "134407002": "Chronic back pain",
    "279040009": "Mechanical low back pain",
}
#: The codes that establish non-specific low back pain for the rules: none. "Low back pain" (279039007) and
#: "chronic low back pain" (278860009) do not say that specific causes were excluded, and no SNOMED CT concept
#: for non-specific low back pain could be confirmed (nhs-standards.md 5 and 9.4; issue 9), so only the
#: answer ``nonSpecificLowBackPain`` settles the criterion. A concept that states it may be added here once
#: it can be cited.
NON_SPECIFIC_LOW_BACK_PAIN_CODES: dict[str, str] = {}
SCIATICA_CODE = "23056005"

ODS_CODE = re.compile(r"^[A-Z0-9]{1,9}$")
# UK postcode, outward and inward parts (GOV.UK / Royal Mail format; GIR 0AA included).
POSTCODE = re.compile(r"^(GIR 0AA|[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2})$")

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: A SNOMED CT concept id, and a FHIR id (https://hl7.org/fhir/R4/datatypes.html#id): compiled once, as every
#: referral read from a Bundle checks them.
SCTID = re.compile(r"[1-9][0-9]{5,17}")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SPACES = re.compile(r"\s+")
_SPACES_AND_DASHES = re.compile(r"[\s-]")


def _iso_date_text(value: object) -> object:
    # pydantic also takes numbers and numeric strings as Unix times: a date must be written YYYY-MM-DD.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not ISO_DATE.match(value):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]
Answer = StrictBool | None


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, use_enum_values=False
    )


class HumanName(_Model):
    given: list[NonEmpty] = Field(min_length=1, description="Given names, first name first")
    family: NonEmpty
    prefix: list[NonEmpty] = Field(default_factory=list, description="e.g. Dr, Mrs")


class Address(_Model):
    lines: list[NonEmpty] = Field(default_factory=list, description="House and street lines")
    city: NonEmpty | None = None
    postcode: str = Field(description="UK postcode, e.g. LS1 4AP")

    @field_validator("postcode")
    @classmethod
    def _postcode(cls, value: str) -> str:
        compact = _SPACES.sub("", value.upper())
        normalised = f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact
        if not POSTCODE.match(normalised):
            raise ValueError(f"{value!r} is not a UK postcode")
        return normalised


VerificationStatus = Literal["01", "02", "03", "04", "05", "06", "07", "08"]


class Patient(_Model):
    nhs_number: str | None = Field(
        default=None, description="10-digit NHS number (spaces allowed); its check digit is verified"
    )
    nhs_number_verification_status: VerificationStatus = Field(
        default="02",
        description="UK Core NHS number verification status (England): 01 verified, 02 present but not traced, ...",
    )
    # Name, birth date and sex may be missing from a received referral (the reader maps what it finds); the
    # rules then leave age for the clinician, and the FHIR builders leave the element out.
    name: HumanName | None = None
    birth_date: IsoDate | None = None
    sex: Literal["female", "male", "other", "unknown"] | None = None
    address: Address | None = None
    phone: NonEmpty | None = None
    email: NonEmpty | None = None

    @field_validator("nhs_number")
    @classmethod
    def _nhs_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = _SPACES_AND_DASHES.sub("", value)
        if not (len(digits) == 10 and digits.isdigit()):
            raise ValueError(f"{value!r} is not a 10-digit NHS number")
        if not nhs_number.is_valid(digits):
            raise ValueError(f"{value!r} fails the NHS number check digit (Modulus 11)")
        return digits


class Organisation(_Model):
    ods_code: str | None = Field(default=None, description="ODS organisation code, 1-9 letters or digits")
    name: NonEmpty | None = None
    service_id: NonEmpty | None = Field(
        default=None, description="Directory of Services id of the receiving service (BaRS routing)"
    )

    @field_validator("ods_code")
    @classmethod
    def _ods(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not ODS_CODE.match(code):
            raise ValueError(f"{value!r} is not an ODS code (1-9 letters or digits)")
        return code

    @model_validator(mode="after")
    def _named(self) -> Organisation:
        # FHIR Organization org-1: a name or an identifier; a received organisation may lack its ODS code, and
        # a receiving site may be named by its DoS service id alone (BaRS routes on it).
        if self.ods_code is None and self.name is None and self.service_id is None:
            raise ValueError("an organisation needs an odsCode, a name or (a receiving site) a serviceId")
        return self


class Registration(_Model):
    body: Literal["gmc", "hcpc", "nmc", "gphc"]
    number: NonEmpty


class Referrer(_Model):
    name: HumanName | None = None
    role: Literal["gp", "physiotherapist", "msk-practitioner", "orthopaedic-surgeon", "nurse", "other"]
    organisation: Organisation | None = None
    registration: Registration | None = None
    phone: NonEmpty | None = None
    email: NonEmpty | None = None


class Diagnosis(_Model):
    code: str = Field(description="SNOMED CT concept id")
    display: NonEmpty | None = None

    @field_validator("code")
    @classmethod
    def _sctid(cls, value: str) -> str:
        if not SCTID.fullmatch(value):
            raise ValueError(f"{value!r} is not a SNOMED CT concept id")
        return value


class EligibilityAnswers(_Model):
    """Answers to the eligibility questionnaire. ``None`` (or absent) means not answered."""

    independently_mobile: Answer = None
    contraindications_to_exercise: Answer = None
    # knee/hip
    clinical_diagnosis_of_osteoarthritis: Answer = Field(
        default=None, description="knee-hip: when absent, an osteoarthritis code in diagnoses counts"
    )
    needs_supervised_exercise: Answer = None
    # back
    non_specific_low_back_pain: Answer = Field(
        default=None, description="back: when absent, a low back pain code in diagnoses counts"
    )
    recurrent_episodes: Answer = None
    radicular_pain: Answer = None
    able_to_join_group: Answer = None
    would_benefit_from_group: Answer = None
    wishes_to_take_part: Answer = None


#: (field name, wire name) of each eligibility answer, in the model's order: :func:`answers_json` and the
#: cross-field view write the answers with it.
_ANSWER_ALIASES = tuple((name, info.alias or name) for name, info in EligibilityAnswers.model_fields.items())


def answers_json(answers: EligibilityAnswers) -> dict[str, bool]:
    """``answers.model_dump(mode="json", by_alias=True, exclude_none=True)`` (each answer is a bool or None),
    without the serializer's call: the reader writes the answers of every eligibility response it reads."""
    values = answers.__dict__
    return {alias: v for name, alias in _ANSWER_ALIASES if (v := values[name]) is not None}


KNEE_HIP_ONLY = ("clinical_diagnosis_of_osteoarthritis", "needs_supervised_exercise")
BACK_ONLY = (
    "non_specific_low_back_pain",
    "recurrent_episodes",
    "radicular_pain",
    "able_to_join_group",
    "would_benefit_from_group",
    "wishes_to_take_part",
)


class StartBackResult(_Model):
    """A STarT Back result received without its item answers (e.g. only LOINC-coded Observations).

    The scores must be in range and the risk must follow from them by Keele's rule (startback.risk_for): a
    referral whose result contradicts itself is refused, naming the fields (issue 9; checked with the other
    cross-field rules in :func:`consistency_problems`, so that a reader may still hold such a result and
    turn it into a review flag with :func:`escape_fhir.domain.startback.startback_problems`).
    """

    total: StrictInt | None = Field(default=None, ge=0, le=9)
    psychosocial: StrictInt | None = Field(default=None, ge=0, le=5)
    risk: Literal["low", "medium", "high"]


class Referral(_Model):
    id: str | None = Field(default=None, description="Sender's id of the referral (a UUID is advised)")
    referral_date: IsoDate
    pathway: Pathway
    source: ReferralSource
    patient: Patient
    referrer: Referrer | None = Field(default=None, description="Required unless source is self-referral")
    receiver: Organisation | None = Field(default=None, description="The ESCAPE-pain site referred to")
    affected_sites: list[Site] = Field(
        default_factory=list, description="May be empty when not stated: the site criterion is then left for review"
    )
    symptom_duration_months: StrictInt | None = Field(default=None, ge=0, le=1200)
    symptom_onset_date: IsoDate | None = Field(
        default=None,
        description="When the symptoms began (YYYY-MM-DD), if known; the duration rule counts calendar months "
        "from it to the referral date",
    )
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    eligibility: EligibilityAnswers = Field(default_factory=EligibilityAnswers)
    start_back: dict[str, Any] | None = Field(
        default=None,
        description="back: the nine STarT Back answers keyed by LOINC item code (91340-0 .. 91348-3)",
    )
    start_back_result: StartBackResult | None = Field(
        default=None,
        description="back: a STarT Back result whose item answers are not known; when startBack is given "
        "this must agree with its score",
    )
    notes: NonEmpty | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        # It becomes a FHIR id and identifier value: FHIR id syntax [A-Za-z0-9\-\.]{1,64}.
        if value is not None and not FHIR_ID.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '-' or '.'")
        return value

    @field_validator("start_back")
    @classmethod
    def _start_back(cls, value: dict[str, Any] | None) -> dict[str, str] | None:
        if value is None:
            return None
        try:
            return parse_answers(value)
        except ScoringInputError as exc:
            raise ValueError(_join(exc.errors)) from None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Referral:
        today = _today(info.context)
        dates = (self.patient.birth_date, self.referral_date, self.symptom_onset_date)
        problems = consistency_problems(self._cross_field_view(), today, dates=dates)
        if self.start_back is not None and self.start_back_result is not None:
            computed = score(self.start_back)
            given = self.start_back_result
            if (given.risk, given.total, given.psychosocial) != (
                computed.risk.value,
                computed.total if given.total is not None else None,
                computed.psychosocial if given.psychosocial is not None else None,
            ):
                problems.append(
                    FieldError(
                        "startBackResult",
                        f"does not match the score of startBack (total {computed.total}, "
                        f"psychosocial {computed.psychosocial}, risk {computed.risk.value})",
                    )
                )
        if problems:
            raise ValueError(_join(problems))
        return self

    def _cross_field_view(self) -> dict[str, Any]:
        """The fields consistency_problems reads, in their JSON form: cheaper than a whole model_dump, which
        every referral read from a Bundle would pay (the checks themselves are the same). The dates are not in
        it: :meth:`_consistent` hands them to the date checks as dates (no text to write and parse back).
        ``str()`` of a StrEnum member is its value, without the Enum's ``value`` property (Python code)."""
        result = self.start_back_result
        return {
            "pathway": str(self.pathway),
            "source": str(self.source),
            "referrer": {} if self.referrer is not None else None,
            "affectedSites": [str(s) for s in self.affected_sites],
            "eligibility": answers_json(self.eligibility),
            "startBack": self.start_back,
            # model_dump(exclude_none=True) of the flat result (its field names are its wire names)
            "startBackResult": {k: v for k, v in result.__dict__.items() if v is not None}
            if result is not None
            else None,
        }

    def effective_start_back(self) -> StartBackResult | None:
        """The STarT Back result: scored from the answers when given, else ``startBackResult`` as sent."""
        if self.start_back is not None:
            s = score(self.start_back)
            return StartBackResult(total=s.total, psychosocial=s.psychosocial, risk=s.risk.value)
        return self.start_back_result

    def to_json_dict(self) -> dict[str, Any]:
        """The referral in the input format (camelCase, unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=False)


# Several problems found by one validator travel in one ValueError as "@loc: message | @loc: message"; the
# locations are relative to the field the validator belongs to.
_SEP = " | "


def _join(errors: list[FieldError]) -> str:
    return _SEP.join(f"@{e.location}: {e.message}" for e in errors)


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors():
        location = ""
        for part in err["loc"]:
            location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "value_error" and message.startswith("@"):
            for part in message.split(_SEP):
                sub, _, text = part.removeprefix("@").partition(": ")
                errors.append(FieldError(".".join(p for p in (location, sub) if p), text))
            continue
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(location or "referral", message))
    return errors


@functools.cache
def _camel(name: str) -> str:
    """``to_camel`` of a field name, once per name: it runs a regex substitution, and every referral read from a
    Bundle checks the same few names (about a tenth of reading one, bench/translate.py)."""
    return to_camel(name)


_REFERRER_SOURCES = frozenset(s.value for s in ReferralSource) - {"self-referral"}
_SITE_VALUES = frozenset(site.value for site in Site)


_KNEE_HIP = Pathway.KNEE_HIP.value
_BACK = Pathway.BACK.value
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
    answers = data.get("eligibility") if isinstance(data.get("eligibility"), dict) else {}
    misplaced: tuple[str, ...] = ()
    if pathway == _KNEE_HIP:
        for key in ("startBack", "startBackResult"):
            if data.get(key) is not None:
                problems.append(FieldError(key, "STarT Back applies to the back pathway only"))
        wrong = [s for s in sites if s not in KNEE_HIP_SITES]
        if wrong:
            problems.append(FieldError("affectedSites", f"{', '.join(wrong)} is not a knee or hip"))
        misplaced = BACK_ONLY
    elif pathway == _BACK:
        wrong = [s for s in sites if s in KNEE_HIP_SITES]
        if wrong:
            problems.append(FieldError("affectedSites", f"{', '.join(wrong)} is not on the back pathway"))
        misplaced = KNEE_HIP_ONLY
    if answers:
        problems.extend(
            FieldError(f"eligibility.{_camel(f)}", f"does not apply to the {pathway} pathway")
            for f in misplaced
            if answers.get(_camel(f)) is not None
        )
    result = data.get("startBackResult")
    if isinstance(result, dict) and pathway == _BACK:
        problems.extend(_startback_result_problems(result))
    if dates is None:
        problems.extend(date_problems(data, today or date.today()))
    else:
        problems.extend(_date_problems(*dates, today or date.today()))
    return problems


def _startback_result_problems(result: dict[str, Any]) -> list[FieldError]:
    """Keele's rule on a supplied result. A value out of range or of the wrong type is left to the field's own
    validator, which names it already."""
    total, psychosocial, risk = (result.get(k) for k in ("total", "psychosocial", "risk"))
    in_range = all(v is None or (type(v) is int and 0 <= v <= top) for v, top in ((total, 9), (psychosocial, 5)))
    if not in_range or risk not in ("low", "medium", "high"):
        return []
    return [
        FieldError(f"startBackResult.{name}", message)
        for name, message in startback_field_problems(total, psychosocial, risk)
    ]


#: Oldest plausible age on the referral date: older is a typing error (issue 9: "a patient aged 136").
MAX_AGE = 120
#: Clock skew allowed between the sender and us before a date counts as in the future.
CLOCK_SKEW = timedelta(days=1)


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
    problems = [
        FieldError(path, f"{value} is in the future (today is {today})")
        for path, value in (("patient.birthDate", birth), ("referralDate", referred), ("symptomOnsetDate", onset))
        if value is not None and value > latest
    ]
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


def _today(context: object) -> date:
    """The date "today" for the date checks: ``load_referral(..., today=)`` (tests, replays) or the clock."""
    given = context.get("today") if isinstance(context, dict) else None
    return given if isinstance(given, date) else date.today()


def load_referral(data: bytes | str | dict[str, Any], *, today: date | None = None) -> Referral:
    """Read a referral from JSON text or a decoded object; every bad field is reported at once.

    ``today`` is the date future dates are judged against (default: the clock's date).
    """
    if not isinstance(data, dict):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ReferralInputError([FieldError("", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise ReferralInputError([FieldError("", "a referral must be a JSON object")])
    try:
        # Wire names only (camelCase): snake_case keys are unknown fields, as the published schema says.
        return Referral.model_validate(data, by_alias=True, by_name=False, context={"today": today})
    except ValidationError as exc:
        errors = _field_errors(exc)
        if not any(e.location in ("referral", "") for e in errors):
            # The cross-field checks did not run (a field failed first): run them on the raw input.
            known = {(e.location, e.message) for e in errors}
            errors += [e for e in consistency_problems(data, today) if (e.location, e.message) not in known]
        raise ReferralInputError(errors) from None


def referral_json_schema() -> dict[str, Any]:
    schema = Referral.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://w3id.org/escape-fhir/schema/referral.schema.json"
    schema["title"] = "ESCAPE-pain referral"
    return schema
