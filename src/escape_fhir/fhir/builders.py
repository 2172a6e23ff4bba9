"""Referral (domain) -> FHIR R4 resources, as FHIR JSON dicts.

Every resource gets ``meta.lastUpdated`` (BaRS: all resources carry it, the same timestamp for a new
message; nhs-standards.md 1.3) and a ``meta.profile``: the project's own profile where it has one for the
resource kind (codes.PROFILE_FOR_KIND), else UK Core's. References between resources use the
``urn:uuid:`` fullUrls of the Bundle the resources will travel in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from escape_fhir.domain import Referral, assess
from escape_fhir.domain.eligibility import EligibilityResult
from escape_fhir.domain.referral import Diagnosis, HumanName, Organisation, Patient, Referrer, StartBackResult
from escape_fhir.fhir import codes
from escape_fhir.fhir.questionnaires import eligibility_response, startback_response
from escape_fhir.fhir.resources import Json


def resource_id(referral_id: str, kind: str) -> str:
    """A stable id per referral and resource kind, so translating the same referral twice agrees."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{codes.BASE}/referral/{referral_id}/{kind}"))


def urn(resource_id_: str) -> str:
    return f"urn:uuid:{resource_id_}"


@dataclass
class ResourceSet:
    """The resources of one referral, in Bundle order, with the fullUrl of each."""

    referral_id: str
    timestamp: str
    entries: list[tuple[str, Json]] = field(default_factory=list)

    def add(self, kind: str, resource: Json, *, profile: bool = True) -> str:
        rid = resource_id(self.referral_id, kind)
        meta: Json = {"lastUpdated": self.timestamp}
        # The project profile of this kind where there is one, else the UK Core profile of the type.
        profile_url = codes.PROFILE_FOR_KIND.get(kind) or codes.PROFILE.get(resource["resourceType"])
        if profile and profile_url:
            meta["profile"] = [profile_url]
        full = {"resourceType": resource["resourceType"], "id": rid, "meta": meta}
        full.update({k: v for k, v in resource.items() if k != "resourceType"})
        self.entries.append((urn(rid), full))
        return urn(rid)

    def ref(self, kind: str) -> str:
        return urn(resource_id(self.referral_id, kind))


def _name(name: HumanName) -> Json:
    out: Json = {"use": "official", "family": name.family, "given": list(name.given)}
    if name.prefix:
        out["prefix"] = list(name.prefix)
    return out


def _telecom(phone: str | None, email: str | None) -> list[Json]:
    telecom = [{"system": "phone", "value": phone}] if phone else []
    return telecom + ([{"system": "email", "value": email}] if email else [])


def _coding(system: str, code: str, display: str | None = None) -> Json:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def patient_resource(patient: Patient) -> Json:
    res: Json = {"resourceType": "Patient"}
    if patient.nhs_number:
        status = patient.nhs_number_verification_status
        res["identifier"] = [
            {
                "extension": [
                    {
                        "url": codes.EXT_NHS_NUMBER_VERIFICATION,
                        "valueCodeableConcept": {
                            "coding": [
                                _coding(
                                    codes.CS_NHS_NUMBER_VERIFICATION_ENGLAND,
                                    status,
                                    codes.NHS_NUMBER_VERIFICATION_DISPLAY[status],
                                )
                            ]
                        },
                    }
                ],
                "system": codes.NHS_NUMBER,
                "value": patient.nhs_number,
            }
        ]
    # Name, sex and birth date may be unknown in a received referral: the element is then left out.
    if patient.name:
        res["name"] = [_name(patient.name)]
    if telecom := _telecom(patient.phone, patient.email):
        res["telecom"] = telecom
    if patient.sex:
        res["gender"] = patient.sex
    if patient.birth_date:
        res["birthDate"] = patient.birth_date.isoformat()
    if patient.address:
        address: Json = {"use": "home"}
        if patient.address.lines:
            address["line"] = list(patient.address.lines)
        if patient.address.city:
            address["city"] = patient.address.city
        address["postalCode"] = patient.address.postcode
        res["address"] = [address]
    return res


def organization_resource(org: Organisation) -> Json:
    res: Json = {"resourceType": "Organization"}
    if org.ods_code:
        res["identifier"] = [{"system": codes.ODS_ORGANIZATION, "value": org.ods_code}]
    if org.name:
        res["name"] = org.name
    return res


def practitioner_resource(referrer: Referrer) -> Json:
    res: Json = {"resourceType": "Practitioner"}
    if referrer.registration:
        system = codes.REGISTRATION_SYSTEMS[referrer.registration.body]
        res["identifier"] = [{"system": system, "value": referrer.registration.number}]
    if referrer.name:
        res["name"] = [_name(referrer.name)]
    if telecom := _telecom(referrer.phone, referrer.email):
        res["telecom"] = telecom
    return res


def practitioner_role_resource(referrer: Referrer, practitioner: str, organization: str | None) -> Json:
    coding = [_coding(codes.CS_REFERRER_ROLE, referrer.role)]
    if referrer.role == "gp":
        coding.append(_coding(codes.SNOMED, *codes.SNOMED_GENERAL_PRACTITIONER))
    return {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": practitioner},
        **({"organization": {"reference": organization}} if organization else {}),
        "code": [{"coding": coding}],
    }


def condition_resource(diagnosis: Diagnosis, subject: str, recorded: str) -> Json:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [_coding(codes.CONDITION_CLINICAL, "active", "Active")]},
        "verificationStatus": {"coding": [_coding(codes.CONDITION_VERIFICATION, "confirmed", "Confirmed")]},
        "category": [{"coding": [_coding(codes.CONDITION_CATEGORY, "problem-list-item", "Problem List Item")]}],
        "code": {"coding": [_coding(codes.SNOMED, diagnosis.code, diagnosis.display)]},
        "subject": {"reference": subject},
        "recordedDate": recorded,
    }


def _score_observation(code: tuple[str, str], subject: str, effective: str, value: Json) -> Json:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [_coding(codes.OBSERVATION_CATEGORY, "survey", "Survey")]}],
        "code": {"coding": [_coding(codes.LOINC, *code)]},
        "subject": {"reference": subject},
        "effectiveDateTime": effective,
        **value,
    }


def startback_observations(result: StartBackResult, subject: str, effective: str) -> list[tuple[str, Json]]:
    """The score Observations (LOINC 91351-7 total, 91350-9 subscore, 91352-5 risk) that are known."""
    out = []
    if result.total is not None:
        value = {"valueInteger": result.total}
        out.append(("startback-total", _score_observation(codes.STARTBACK_TOTAL, subject, effective, value)))
    if result.psychosocial is not None:
        value = {"valueInteger": result.psychosocial}
        out.append(("startback-subscore", _score_observation(codes.STARTBACK_SUBSCORE, subject, effective, value)))
    risk_code, risk_display = codes.STARTBACK_RISK_ANSWERS[result.risk]
    risk_value = {"valueCodeableConcept": {"coding": [_coding(codes.LOINC, risk_code, risk_display)]}}
    out.append(("startback-risk", _score_observation(codes.STARTBACK_RISK, subject, effective, risk_value)))
    return out


def eligibility_observation(result: EligibilityResult, subject: str, effective: str, derived: list[str]) -> Json:
    """The eligibility decision with each criterion's outcome and reason, for triage to read."""
    components = [
        {
            "code": {"coding": [_coding(codes.CS_CRITERION, c.code, c.title)]},
            "valueCodeableConcept": {
                "coding": [_coding(codes.CS_CRITERION_OUTCOME, c.outcome.value)],
                "text": c.reason,
            },
        }
        for c in result.criteria
    ]
    res: Json = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [_coding(codes.CS_OBSERVATION, "eligibility-assessment", "ESCAPE-pain eligibility assessment")]
        },
        "subject": {"reference": subject},
        "effectiveDateTime": effective,
        "valueCodeableConcept": {"coding": [_coding(codes.CS_DECISION, result.decision.value)]},
        "component": components,
    }
    if derived:
        res["derivedFrom"] = [{"reference": r} for r in derived]
    return res


def referral_resources(referral: Referral, timestamp: str, *, status: str = "active") -> ResourceSet:
    """Every resource of a referral, ServiceRequest first, then the resources it references."""
    rid = referral.id or str(uuid.uuid4())
    rs = ResourceSet(rid, timestamp)
    subject = rs.ref("patient")
    rs.entries.append(("", {}))  # the ServiceRequest stands first but is built last, once all refs exist
    rs.add("patient", patient_resource(referral.patient))
    requester = _add_referrer(rs, referral)
    performer = _add_receiver(rs, referral.receiver) if referral.receiver else None
    recorded = referral.referral_date.isoformat()
    reasons = [
        rs.add(f"condition-{i}", condition_resource(d, subject, recorded)) for i, d in enumerate(referral.diagnoses)
    ]
    eligibility_qr = eligibility_response(referral, id="", subject=subject, author=requester, authored=timestamp)
    supporting = [rs.add("eligibility-qr", _strip_id(eligibility_qr))]
    derived = list(supporting)
    if referral.start_back is not None:
        qr = startback_response(referral.start_back, id="", subject=subject, author=requester, authored=timestamp)
        supporting.append(rs.add("startback-qr", _strip_id(qr)))
    result = referral.effective_start_back()
    if result is not None:
        for kind, obs in startback_observations(result, subject, timestamp):
            if referral.start_back is not None:
                obs["derivedFrom"] = [{"reference": rs.ref("startback-qr")}]
            supporting.append(rs.add(kind, obs))
        derived.append(rs.ref("startback-risk"))
    supporting.append(rs.add("eligibility", eligibility_observation(assess(referral), subject, timestamp, derived)))
    rs.add(
        "service-request", service_request(referral, rid, subject, requester, performer, reasons, supporting, status)
    )
    rs.entries[0] = rs.entries.pop()
    return rs


def _strip_id(resource: Json) -> Json:
    """Drop id and meta: ResourceSet.add gives every resource its stable id and meta."""
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def receiver_kind(receiver: Organisation) -> str:
    """The resource that stands for the receiving site: its Organization, or only the HealthcareService when a
    sender named the site by its DoS service id alone (an Organization needs a name or an identifier, org-1)."""
    return "receiver" if receiver.ods_code or receiver.name else "receiver-service"


def _add_receiver(rs: ResourceSet, receiver: Organisation) -> str:
    """The receiving site; with a DoS service id, the HealthcareService it runs (BaRS routes on that id)."""
    organization = (
        rs.add("receiver", organization_resource(receiver)) if receiver_kind(receiver) == "receiver" else None
    )
    if not receiver.service_id:
        assert organization is not None  # an Organisation has an ODS code, a name or a service id
        return organization
    service: Json = {
        "resourceType": "HealthcareService",
        "identifier": [{"system": codes.DOS_SERVICE_ID, "value": receiver.service_id}],
    }
    if organization is not None:
        service["providedBy"] = {"reference": organization}
    if receiver.name:
        service["name"] = receiver.name
    return rs.add("receiver-service", service)


def _add_referrer(rs: ResourceSet, referral: Referral) -> str | None:
    """The requester: a PractitionerRole linking referrer and organisation, or the patient self-referring."""
    ref = referral.referrer
    if ref is None:
        return rs.ref("patient")
    practitioner = rs.add("practitioner", practitioner_resource(ref))
    organization = (
        rs.add("referrer-organization", organization_resource(ref.organisation)) if ref.organisation else None
    )
    return rs.add("practitioner-role", practitioner_role_resource(ref, practitioner, organization))


def service_request(
    referral: Referral,
    rid: str,
    subject: str,
    requester: str | None,
    performer: str | None,
    reasons: list[str],
    supporting: list[str],
    status: str,
) -> Json:
    pathway = referral.pathway.value
    sr: Json = {
        "resourceType": "ServiceRequest",
        "extension": [
            {"url": codes.EXT_REFERRAL_SOURCE, "valueCoding": _coding(codes.CS_REFERRAL_SOURCE, referral.source.value)}
        ],
        "identifier": [{"system": codes.ID_REFERRAL, "value": rid}],
        "status": status,
        # BaRS: intent fixed "plan"; category carries the message category coding (nhs-standards 1.5).
        "intent": "plan",
        "category": [{"coding": [_coding(codes.CS_MESSAGE_CATEGORY_SR, "referral", "Transfer of Care")]}],
        "code": {
            "coding": [
                _coding(codes.SNOMED, *codes.REFERRAL_TO_PHYSIOTHERAPY),
                _coding(codes.CS_PROGRAMME, pathway, codes.PROGRAMME_DISPLAY[pathway]),
            ],
            "text": codes.PROGRAMME_DISPLAY[pathway],
        },
        "subject": {"reference": subject},
        "authoredOn": referral.referral_date.isoformat(),
    }
    if requester:
        sr["requester"] = {"reference": requester}
    if performer:
        sr["performer"] = [{"reference": performer}]
    if reasons:
        sr["reasonReference"] = [{"reference": r} for r in reasons]
    sr["supportingInfo"] = [{"reference": r} for r in supporting]
    if referral.notes:
        sr["note"] = [{"text": referral.notes}]
    return sr
