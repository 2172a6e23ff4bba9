"""FHIR Bundle -> referral: the way back, for our own Bundles and for an integration engine's.

Accepted: ``message`` (the MessageHeader's focus is the ServiceRequest), ``transaction`` and ``collection``
Bundles (the one ServiceRequest they hold). An engine's BaRS-shaped Bundle need not come from this project:
the pathway may be told only by its Questionnaire or diagnosis codes, and the STarT Back result may arrive
only as LOINC-coded Observations or as a QuestionnaireResponse whose linkIds are the LOINC item codes.

Everything that cannot be mapped is reported at once as a MappingError whose issues say where (FHIRPath
with indices, e.g. ``Bundle.entry[3].resource.birthDate``) and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from escape_fhir.domain import Referral, load_referral
from escape_fhir.domain.referral import LOW_BACK_PAIN_CODES, OSTEOARTHRITIS_CODES, SCIATICA_CODE
from escape_fhir.errors import Issue, MappingError, ReferralInputError
from escape_fhir.fhir import codes
from escape_fhir.fhir.questionnaires import read_eligibility_response, read_startback_response
from escape_fhir.fhir.reader_parts import (
    BundleIndex,
    at,
    date_part,
    find_identifier,
    official_name,
    programme_code,
    read_address,
    read_name,
    read_role,
    read_telecom,
    referral_source,
)
from escape_fhir.fhir.resources import Json

SUPPORTED_TYPES = ("message", "transaction", "collection")
REGISTRATION_BODIES = {system: body for body, system in codes.REGISTRATION_SYSTEMS.items()}
ROLE_SOURCES = {
    "gp": "gp",
    "physiotherapist": "physiotherapy",
    "msk-practitioner": "msk-triage",
    "orthopaedic-surgeon": "orthopaedic-surgeon",
}
STARTBACK_LOINC = {
    codes.STARTBACK_TOTAL[0]: "total",
    codes.STARTBACK_SUBSCORE[0]: "psychosocial",
    codes.STARTBACK_RISK[0]: "risk",
}
RISK_BY_LOINC = {code: risk for risk, (code, _) in codes.STARTBACK_RISK_ANSWERS.items()}


@dataclass
class ReadResult:
    referral: Referral
    warnings: list[Issue] = field(default_factory=list)


class _Reader:
    def __init__(self, bundle: Json) -> None:
        self.index = BundleIndex.of(bundle)
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.where: dict[str, str] = {}  # referral field path -> FHIR location, for error messages

    def error(self, location: str, message: str, code: str = "invalid") -> None:
        self.errors.append(Issue("error", code, message, location))

    # --- the ServiceRequest -------------------------------------------------------------------------
    def service_request(self, bundle: Json) -> int | None:
        kind = bundle.get("type")
        if kind not in SUPPORTED_TYPES:
            self.error(
                "Bundle.type", f"Bundle type {kind!r} is not one of {', '.join(SUPPORTED_TYPES)}", "not-supported"
            )
            return None
        if kind == "message":
            return self._message_focus()
        found = self.index.of_type("ServiceRequest")
        if len(found) != 1:
            self.error("Bundle.entry", f"expected exactly one ServiceRequest, found {len(found)}", "required")
            return None
        return found[0]

    def _message_focus(self) -> int | None:
        if not self.index.entries or self.index.resource(0).get("resourceType") != "MessageHeader":
            self.error("Bundle.entry[0]", "a message Bundle must start with its MessageHeader", "structure")
            return None
        for j, focus in enumerate(self.index.resource(0).get("focus", [])):
            i = self.index.resolve(focus)
            if i is not None and self.index.resource(i).get("resourceType") == "ServiceRequest":
                return i
            if i is None:
                self.error(at(0, f"focus[{j}]"), "focus does not resolve to an entry of the Bundle", "not-found")
        if not self.errors:
            self.error(at(0, "focus"), "the MessageHeader's focus must be a ServiceRequest", "required")
        return None

    # --- one part of the referral each ------------------------------------------------------------
    def patient(self, sr_at: int, sr: Json) -> tuple[int, Json] | None:
        i = self.index.resolve(sr.get("subject"))
        if i is None or self.index.resource(i).get("resourceType") != "Patient":
            self.error(at(sr_at, "subject"), "subject must reference a Patient in the Bundle", "not-found")
            return None
        res = self.index.resource(i)
        out: Json = {}
        self.where["patient"] = at(i)
        for k, ident in enumerate(res.get("identifier", [])):
            if ident.get("system") == codes.NHS_NUMBER:
                out["nhsNumber"] = ident.get("value")
                self.where["patient.nhsNumber"] = at(i, f"identifier[{k}].value")
                status = self._verification(ident, at(i, f"identifier[{k}]"))
                if status:
                    out["nhsNumberVerificationStatus"] = status
        name_at, name = official_name(res.get("name", []))
        if name is not None:
            out["name"] = read_name(name)
            self.where["patient.name"] = at(i, f"name[{name_at}]")
        for key, element in (("birthDate", "birthDate"), ("sex", "gender")):
            if element in res:
                out[key] = res[element]
            self.where[f"patient.{key}"] = at(i, element)
        out.update(read_telecom(res.get("telecom", [])))
        addresses = res.get("address", [])
        if addresses:
            out["address"] = read_address(addresses[0])
            self.where["patient.address"] = at(i, "address[0]")
        return i, out

    def _verification(self, ident: Json, location: str) -> str | None:
        for e, ext in enumerate(ident.get("extension", [])):
            if ext.get("url") != codes.EXT_NHS_NUMBER_VERIFICATION:
                continue
            for c, coding in enumerate((ext.get("valueCodeableConcept") or {}).get("coding", [])):
                system, code = coding.get("system"), coding.get("code")
                where = f"{location}.extension[{e}].valueCodeableConcept.coding[{c}]"
                if system == codes.CS_NHS_NUMBER_VERIFICATION_ENGLAND and code in codes.NHS_NUMBER_VERIFICATION_DISPLAY:
                    return str(code)
                if system == codes.CS_NHS_NUMBER_VERIFICATION_RETIRED and code in codes.NHS_NUMBER_VERIFICATION_RETIRED:
                    # BaRS senders still use the retired UK Core codes (nhs-standards.md 1.8): accept, and say so.
                    mapped = codes.NHS_NUMBER_VERIFICATION_RETIRED[code]
                    message = f"retired NHS number verification code {code!r} read as {mapped}"
                    self.warnings.append(Issue("warning", "code-invalid", message, where))
                    return mapped
                self.error(where, f"unknown NHS number verification status {system}|{code}", "code-invalid")
        return None

    def requester(self, sr_at: int, sr: Json, patient_at: int | None) -> tuple[Json | None, str | None]:
        """The referrer and the role code, or (None, "self") when the patient refers themself."""
        if "requester" not in sr:
            return None, None
        i = self.index.resolve(sr["requester"])
        if i is None:
            self.error(at(sr_at, "requester"), "requester does not resolve to an entry of the Bundle", "not-found")
            return None, None
        kind = self.index.resource(i).get("resourceType")
        if kind == "Patient" and i == patient_at:
            return None, "self"
        if kind == "PractitionerRole":
            return self._practitioner_role(i)
        if kind == "Practitioner":
            return self._practitioner(i, None, None), "other"
        self.error(at(sr_at, "requester"), f"a {kind} requester cannot be mapped to a referrer", "not-supported")
        return None, None

    def _practitioner_role(self, i: int) -> tuple[Json | None, str]:
        role_res = self.index.resource(i)
        role = read_role(role_res)
        org_at = self.index.resolve(role_res.get("organization"))
        prac_at = self.index.resolve(role_res.get("practitioner"))
        if prac_at is None:
            self.error(at(i, "practitioner"), "the PractitionerRole's practitioner is not in the Bundle", "not-found")
            return None, role
        return self._practitioner(prac_at, org_at, role), role

    def _practitioner(self, i: int, org_at: int | None, role: str | None) -> Json:
        res = self.index.resource(i)
        out: Json = {"role": role or "other"}
        self.where["referrer"] = at(i)
        name_at, name = official_name(res.get("name", []))
        if name is not None:
            out["name"] = read_name(name)
            self.where["referrer.name"] = at(i, f"name[{name_at}]")
        for ident in res.get("identifier", []):
            body = REGISTRATION_BODIES.get(ident.get("system"))
            if body and ident.get("value"):
                out["registration"] = {"body": body, "number": ident["value"]}
                break
        out.update(read_telecom(res.get("telecom", [])))
        if org_at is not None:
            out["organisation"] = self.organisation(org_at, "referrer.organisation")
        return out

    def organisation(self, i: int, field_path: str, service_id: str | None = None) -> Json:
        res = self.index.resource(i)
        self.where[field_path] = at(i)
        out: Json = {}
        for k, ident in enumerate(res.get("identifier", [])):
            if ident.get("system") == codes.ODS_ORGANIZATION:
                out["odsCode"] = ident.get("value")
                self.where[f"{field_path}.odsCode"] = at(i, f"identifier[{k}].value")
                break
        if res.get("name"):
            out["name"] = res["name"]
        if service_id:
            out["serviceId"] = service_id
        return out

    def receiver(self, sr: Json) -> Json | None:
        """The receiving site: the performer (a HealthcareService or Organization), else the message destination."""
        service_id, receiver_at = None, None
        for performer in sr.get("performer", []):
            i = self.index.resolve(performer)
            kind = self.index.resource(i).get("resourceType") if i is not None else None
            if kind == "HealthcareService" and i is not None:
                service = self.index.resource(i)
                service_id = find_identifier(service, codes.DOS_SERVICE_ID)
                receiver_at = self.index.resolve(service.get("providedBy"))
            elif kind == "Organization":
                receiver_at = i
            if receiver_at is not None:
                break
        header = self.index.resource(0) if self.index.entries else {}
        for dest in header.get("destination", []) if header.get("resourceType") == "MessageHeader" else []:
            system, _, value = str(dest.get("endpoint", "")).partition("|")
            if system == codes.DOS_SERVICE_ID and value:
                service_id = service_id or value
            receiver_at = self.index.resolve(dest.get("receiver")) if receiver_at is None else receiver_at
        if receiver_at is None or self.index.resource(receiver_at).get("resourceType") != "Organization":
            return None
        return self.organisation(receiver_at, "receiver", service_id)

    def diagnoses(self, sr: Json) -> list[Json]:
        found = [self.index.resolve(r) for r in sr.get("reasonReference", [])]
        conditions = [i for i in found if i is not None and self.index.resource(i).get("resourceType") == "Condition"]
        if not sr.get("reasonReference"):
            conditions = self.index.of_type("Condition")
        out = []
        for i in conditions:
            for coding in (self.index.resource(i).get("code") or {}).get("coding", []):
                if coding.get("system") == codes.SNOMED and coding.get("code"):
                    out.append(
                        {"code": coding["code"], **({"display": coding["display"]} if "display" in coding else {})}
                    )
                    break
        return out


def _referral_id(sr: Json) -> str | None:
    return find_identifier(sr, codes.ID_REFERRAL)


class _Answers:
    """The QuestionnaireResponses and STarT Back Observations that travel with the ServiceRequest."""

    def __init__(self, reader: _Reader, sr: Json) -> None:
        self.reader = reader
        index = reader.index
        linked = [index.resolve(r) for r in sr.get("supportingInfo", [])]
        candidates = [i for i in linked if i is not None] or list(range(len(index.entries)))
        self.responses = [i for i in candidates if index.resource(i).get("resourceType") == "QuestionnaireResponse"]
        self.observations = [i for i in candidates if index.resource(i).get("resourceType") == "Observation"]

    def read(self, out: Json) -> None:
        for i in self.responses:
            qr = self.reader.index.resource(i)
            canonical = str(qr.get("questionnaire", "")).split("|")[0]
            try:
                if canonical in (codes.Q_KNEE_HIP, codes.Q_BACK):
                    self._eligibility(i, qr, out)
                elif canonical == codes.Q_STARTBACK or _has_startback_items(qr):
                    self._startback(i, qr, out)
            except MappingError as exc:
                self.reader.errors.extend(exc.issues)
        if "startBack" not in out:
            result = self._observations()
            if result:
                out["startBackResult"] = result

    def _eligibility(self, i: int, qr: Json, out: Json) -> None:
        got = read_eligibility_response(qr, base=at(i))
        out["pathway"] = out.get("pathway") or got.pathway.value
        out["affectedSites"] = [s.value for s in got.affected_sites]
        if got.symptom_duration_months is not None:
            out["symptomDurationMonths"] = got.symptom_duration_months
        out["eligibility"] = got.answers.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.reader.where["eligibility"] = at(i)
        self.reader.where["affectedSites"] = at(i)

    def _startback(self, i: int, qr: Json, out: Json) -> None:
        got = read_startback_response(qr, base=at(i))
        self.reader.where["startBack"] = at(i)
        if got.answers is not None:
            out["startBack"] = got.answers
        elif got.result is not None:
            out["startBackResult"] = got.result.model_dump(mode="json", exclude_none=True)

    def _observations(self) -> Json:
        result: Json = {}
        for i in self.observations:
            obs = self.reader.index.resource(i)
            for coding in (obs.get("code") or {}).get("coding", []):
                name = STARTBACK_LOINC.get(coding.get("code", "")) if coding.get("system") == codes.LOINC else None
                if name is None:
                    continue
                self.reader.where["startBackResult"] = at(i)
                value = self._observation_value(i, obs, name)
                if value is not None:
                    result[name] = value
        return result

    def _observation_value(self, i: int, obs: Json, name: str) -> Any:
        if name != "risk":
            value = obs.get("valueInteger", (obs.get("valueQuantity") or {}).get("value"))
            if value is None:
                self.reader.error(at(i, "value[x]"), f"STarT Back {name} Observation has no integer value", "required")
            return int(value) if value is not None else None
        concept = obs.get("valueCodeableConcept") or {}
        for coding in concept.get("coding", []):
            if coding.get("code") in RISK_BY_LOINC:
                return RISK_BY_LOINC[coding["code"]]
            if str(coding.get("display", "")).lower() in ("low", "medium", "high"):
                return str(coding["display"]).lower()
        text = str(concept.get("text", obs.get("valueString", ""))).lower()
        if text in ("low", "medium", "high"):
            return text
        self.reader.error(
            at(i, "valueCodeableConcept"), "STarT Back risk is not LA9194-7, LA8982-6 or LA9193-9", "code-invalid"
        )
        return None


def _has_startback_items(qr: Json) -> bool:
    from escape_fhir.domain.startback import ITEM_CODES

    stack = list(qr.get("item", []))
    while stack:
        item = stack.pop()
        if str(item.get("linkId", "")).split("/")[-1] in ITEM_CODES:
            return True
        stack.extend(item.get("item", []))
        for answer in item.get("answer", []):
            stack.extend(answer.get("item", []))
    return False


def _pathway_from_codes(out: Json) -> str | None:
    diagnosis_codes = {d["code"] for d in out.get("diagnoses", [])}
    if "startBack" in out or "startBackResult" in out or diagnosis_codes & (set(LOW_BACK_PAIN_CODES) | {SCIATICA_CODE}):
        return "back"
    if diagnosis_codes & set(OSTEOARTHRITIS_CODES):
        return "knee-hip"
    return None


def read_referral(bundle: Json) -> ReadResult:
    """Map a Bundle (FHIR JSON dict) to a referral; MappingError lists everything that cannot be mapped."""
    if bundle.get("resourceType") != "Bundle":
        raise MappingError([Issue("error", "structure", "expected a Bundle", str(bundle.get("resourceType", "")))])
    reader = _Reader(bundle)
    sr_at = reader.service_request(bundle)
    if sr_at is None:
        raise MappingError(reader.errors)
    sr = reader.index.resource(sr_at)
    out: Json = {}
    if rid := _referral_id(sr):
        out["id"] = rid
    out["referralDate"] = date_part(sr.get("authoredOn"))
    reader.where["referralDate"] = at(sr_at, "authoredOn")
    reader.where["source"] = at(sr_at, "extension")
    if programme := programme_code(sr):
        out["pathway"] = programme
    reader.where["pathway"] = at(sr_at, "code")
    patient = reader.patient(sr_at, sr)
    if patient:
        out["patient"] = patient[1]
    referrer, role = reader.requester(sr_at, sr, patient[0] if patient else None)
    if referrer is not None:
        out["referrer"] = referrer
    out["source"] = referral_source(sr) or (
        "self-referral" if role == "self" else ROLE_SOURCES.get(role or "", "other")
    )
    if (receiver := reader.receiver(sr)) is not None:
        out["receiver"] = receiver
    if diagnoses := reader.diagnoses(sr):
        out["diagnoses"] = diagnoses
    _Answers(reader, sr).read(out)
    out["pathway"] = out.get("pathway") or _pathway_from_codes(out)
    if out["pathway"] is None:
        reader.error(
            at(sr_at, "code"),
            "not an ESCAPE-pain referral: no ESCAPE-pain programme code, eligibility questionnaire, "
            "STarT Back result or knee/hip osteoarthritis or low back pain diagnosis tells the pathway",
            "not-supported",
        )
    if out["pathway"] == "back" and "affectedSites" not in out:
        out["affectedSites"] = ["lower-back"]  # a back referral concerns the lower back by definition
    if sr.get("note"):
        out["notes"] = "\n".join(str(n.get("text", "")) for n in sr["note"] if n.get("text")) or None
    if reader.errors:
        raise MappingError(reader.errors)
    try:
        referral = load_referral({k: v for k, v in out.items() if v is not None})
    except ReferralInputError as exc:
        raise MappingError([_located(reader.where, e.location, e.message, sr_at) for e in exc.errors]) from None
    return ReadResult(referral, reader.warnings)


def _located(where: dict[str, str], field_path: str, message: str, sr_at: int) -> Issue:
    """An input-format error restated at the FHIR element it came from (longest known prefix)."""
    key = field_path
    while key and key not in where:
        key = key.rpartition(".")[0] if "." in key else ""
    location = where.get(key, at(sr_at))
    missing = "Field required" in message or message == "required"
    text = f"{field_path}: {'missing' if missing else message}" if field_path else message
    return Issue("error", "required" if missing else "value", f"cannot map {text}", location)
