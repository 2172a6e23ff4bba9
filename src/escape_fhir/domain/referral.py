"""The referral input format: what a non-FHIR system (a site's web form, a GP export) sends us.

The JSON Schema in ``schemas/referral.schema.json`` is generated from these models
(``python scripts/generate_examples.py`` regenerates it; a test checks it is current).
Field names are camelCase on the wire.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

import nhs_number
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

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


KNEE_HIP_SITES = frozenset({Site.LEFT_KNEE, Site.RIGHT_KNEE, Site.LEFT_HIP, Site.RIGHT_HIP})

#: SNOMED CT codes the rules recognise (nhs-standards.md section 5).
OSTEOARTHRITIS_CODES = {"239873007": "Osteoarthritis of knee", "239872002": "Osteoarthritis of hip"}
LOW_BACK_PAIN_CODES = {
    "279039007": "Low back pain",
    "278860009": "Chronic low back pain",
    "161891005": "Backache",
    "134407002": "Chronic back pain",
    "279040009": "Mechanical low back pain",
}
SCIATICA_CODE = "23056005"

ODS_CODE = re.compile(r"^[A-Z0-9]{1,9}$")
# UK postcode, outward and inward parts (GOV.UK / Royal Mail format; GIR 0AA included).
POSTCODE = re.compile(r"^(GIR 0AA|[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2})$")

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


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
        compact = re.sub(r"\s+", "", value.upper())
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
    name: HumanName
    birth_date: date
    sex: Literal["female", "male", "other", "unknown"]
    address: Address | None = None
    phone: NonEmpty | None = None
    email: NonEmpty | None = None

    @field_validator("nhs_number")
    @classmethod
    def _nhs_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = re.sub(r"[\s-]", "", value)
        if not (len(digits) == 10 and digits.isdigit()):
            raise ValueError(f"{value!r} is not a 10-digit NHS number")
        if not nhs_number.is_valid(digits):
            raise ValueError(f"{value!r} fails the NHS number check digit (Modulus 11)")
        return digits


class Organisation(_Model):
    ods_code: str = Field(description="ODS organisation code, 1-9 letters or digits")
    name: NonEmpty | None = None
    service_id: NonEmpty | None = Field(
        default=None, description="Directory of Services id of the receiving service (BaRS routing)"
    )

    @field_validator("ods_code")
    @classmethod
    def _ods(cls, value: str) -> str:
        code = value.strip().upper()
        if not ODS_CODE.match(code):
            raise ValueError(f"{value!r} is not an ODS code (1-9 letters or digits)")
        return code


class Registration(_Model):
    body: Literal["gmc", "hcpc", "nmc", "gphc"]
    number: NonEmpty


class Referrer(_Model):
    name: HumanName
    role: Literal["gp", "physiotherapist", "msk-practitioner", "orthopaedic-surgeon", "nurse", "other"]
    organisation: Organisation
    registration: Registration | None = None
    phone: NonEmpty | None = None
    email: NonEmpty | None = None


class Diagnosis(_Model):
    code: str = Field(description="SNOMED CT concept id")
    display: NonEmpty | None = None

    @field_validator("code")
    @classmethod
    def _sctid(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]{5,17}", value):
            raise ValueError(f"{value!r} is not a SNOMED CT concept id")
        return value


class EligibilityAnswers(_Model):
    """Answers to the eligibility questionnaire. ``None`` (or absent) means not answered."""

    independently_mobile: bool | None = None
    contraindications_to_exercise: bool | None = None
    # knee/hip
    clinical_diagnosis_of_osteoarthritis: bool | None = Field(
        default=None, description="knee-hip: when absent, an osteoarthritis code in diagnoses counts"
    )
    needs_supervised_exercise: bool | None = None
    # back
    non_specific_low_back_pain: bool | None = Field(
        default=None, description="back: when absent, a low back pain code in diagnoses counts"
    )
    recurrent_episodes: bool | None = None
    radicular_pain: bool | None = None
    able_to_join_group: bool | None = None
    would_benefit_from_group: bool | None = None
    wishes_to_take_part: bool | None = None


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
    """A STarT Back result received without its item answers (e.g. only LOINC-coded Observations)."""

    total: int | None = Field(default=None, ge=0, le=9)
    psychosocial: int | None = Field(default=None, ge=0, le=5)
    risk: Literal["low", "medium", "high"]


class Referral(_Model):
    id: str | None = Field(default=None, description="Sender's id of the referral (a UUID is advised)")
    referral_date: date
    pathway: Pathway
    source: ReferralSource
    patient: Patient
    referrer: Referrer | None = Field(default=None, description="Required unless source is self-referral")
    receiver: Organisation | None = Field(default=None, description="The ESCAPE-pain site referred to")
    affected_sites: list[Site] = Field(min_length=1)
    symptom_duration_months: int | None = Field(default=None, ge=0, le=1200)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    eligibility: EligibilityAnswers = Field(default_factory=EligibilityAnswers)
    start_back: dict[str, str] | None = Field(
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
        if value is not None and not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value):
            raise ValueError("must be 1-64 letters, digits, '-' or '.'")
        return value

    @field_validator("start_back")
    @classmethod
    def _start_back(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        try:
            return parse_answers(value)
        except ScoringInputError as exc:
            raise ValueError("; ".join(str(e) for e in exc.errors)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Referral:
        problems: list[str] = []
        if self.referrer is None and self.source != ReferralSource.SELF_REFERRAL:
            problems.append("referrer: required unless source is self-referral")
        if self.pathway == Pathway.KNEE_HIP:
            if self.start_back is not None:
                problems.append("startBack: STarT Back applies to the back pathway only")
            if self.start_back_result is not None:
                problems.append("startBackResult: STarT Back applies to the back pathway only")
            wrong = [s.value for s in self.affected_sites if s not in KNEE_HIP_SITES]
            if wrong:
                problems.append(f"affectedSites: {', '.join(wrong)} is not a knee or hip")
            misplaced = [f for f in BACK_ONLY if getattr(self.eligibility, f) is not None]
        else:
            wrong = [s.value for s in self.affected_sites if s in KNEE_HIP_SITES]
            if wrong:
                problems.append(f"affectedSites: {', '.join(wrong)} is not on the back pathway")
            misplaced = [f for f in KNEE_HIP_ONLY if getattr(self.eligibility, f) is not None]
        if self.start_back is not None and self.start_back_result is not None:
            computed = score(self.start_back)
            given = self.start_back_result
            if (given.risk, given.total, given.psychosocial) != (
                computed.risk.value,
                computed.total if given.total is not None else None,
                computed.psychosocial if given.psychosocial is not None else None,
            ):
                problems.append(
                    f"startBackResult: does not match the score of startBack "
                    f"(total {computed.total}, psychosocial {computed.psychosocial}, risk {computed.risk.value})"
                )
        problems.extend(
            f"eligibility.{to_camel(f)}: does not apply to the {self.pathway.value} pathway" for f in misplaced
        )
        if problems:
            raise ValueError(" | ".join(problems))
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


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors():
        location = ""
        for part in err["loc"]:
            location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
        message = str(err["msg"]).removeprefix("Value error, ")
        if not location and err["type"] == "value_error":
            errors.extend(_split_model_message(message))
            continue
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(location or "referral", message))
    return errors


def _split_model_message(message: str) -> list[FieldError]:
    out = []
    for part in message.split(" | "):
        loc, _, msg = part.partition(": ")
        out.append(FieldError(loc, msg))
    return out


def load_referral(data: bytes | str | dict[str, Any]) -> Referral:
    """Read a referral from JSON text or a decoded object; every bad field is reported at once."""
    if not isinstance(data, dict):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ReferralInputError([FieldError("", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise ReferralInputError([FieldError("", "a referral must be a JSON object")])
    try:
        return Referral.model_validate(data)
    except ValidationError as exc:
        raise ReferralInputError(_field_errors(exc)) from None


def referral_json_schema() -> dict[str, Any]:
    schema = Referral.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://w3id.org/escape-fhir/schema/referral.schema.json"
    schema["title"] = "ESCAPE-pain referral"
    return schema
