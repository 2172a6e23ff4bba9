"""The referral input format: what a non-FHIR system (a site's web form, a GP export) sends us.

The JSON Schema in ``schemas/referral.schema.json`` is generated from these models
(``python scripts/generate_examples.py`` regenerates it; a test checks it is current).
Field names are camelCase on the wire.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
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

from escape_fhir.domain import referral_checks as checks
from escape_fhir.domain.referral_checks import Dates as Dates
from escape_fhir.domain.referral_checks import age_on as age_on
from escape_fhir.domain.referral_checks import consistency_problems
from escape_fhir.domain.referral_checks import date_problems as date_problems
from escape_fhir.domain.startback import parse_answers, score
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

# The checks' constants, where the rest of the package and its tests import them from.
ODS_CODE = checks.ODS_CODE
POSTCODE = checks.POSTCODE
ISO_DATE = checks.ISO_DATE
SCTID = checks.SCTID
FHIR_ID = checks.FHIR_ID
KNEE_HIP_ONLY = checks.KNEE_HIP_ONLY
BACK_ONLY = checks.BACK_ONLY
MAX_AGE = checks.MAX_AGE
CLOCK_SKEW = checks.CLOCK_SKEW

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# The checks of single fields are plain functions of referral_checks (compiled), called by pydantic-core
# directly: after the field's own type is validated, so that None (an optional field left out) never reaches
# them, and a value of the wrong type gets pydantic's message.
IsoDate = Annotated[date, BeforeValidator(checks.iso_date_text)]
Postcode = Annotated[str, AfterValidator(checks.postcode)]
OdsCode = Annotated[str, AfterValidator(checks.ods_code)]
NhsNumber = Annotated[str, AfterValidator(checks.nhs_number_digits)]
SnomedId = Annotated[str, AfterValidator(checks.sctid)]
FhirId = Annotated[str, AfterValidator(checks.fhir_id)]
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
    postcode: Postcode = Field(description="UK postcode, e.g. LS1 4AP")


VerificationStatus = Literal["01", "02", "03", "04", "05", "06", "07", "08"]


class Patient(_Model):
    nhs_number: NhsNumber | None = Field(
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


class Organisation(_Model):
    ods_code: OdsCode | None = Field(default=None, description="ODS organisation code, 1-9 letters or digits")
    name: NonEmpty | None = None
    service_id: NonEmpty | None = Field(
        default=None, description="Directory of Services id of the receiving service (BaRS routing)"
    )

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
    code: SnomedId = Field(description="SNOMED CT concept id")
    display: NonEmpty | None = None


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


#: A referral without eligibility answers shares this one (frozen, so nothing can change it): a default
#: built per referral would be a whole model validation for each one read.
NO_ANSWERS = EligibilityAnswers()


def _no_answers() -> EligibilityAnswers:
    return NO_ANSWERS


def answers_json(answers: EligibilityAnswers) -> dict[str, bool]:
    """``answers.model_dump(mode="json", by_alias=True, exclude_none=True)`` (each answer is a bool or None),
    without the serializer's call: the reader writes the answers of every eligibility response it reads."""
    values = answers.__dict__
    return {alias: v for name, alias in _ANSWER_ALIASES if (v := values[name]) is not None}


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
    id: FhirId | None = Field(default=None, description="Sender's id of the referral (a UUID is advised)")
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
    eligibility: EligibilityAnswers = Field(default_factory=_no_answers)
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
        problems = checks.referral_problems(self, checks.today_of(info.context))
        if problems:
            raise ValueError(_join(problems))
        return self

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
