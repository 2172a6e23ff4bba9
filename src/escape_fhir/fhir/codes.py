"""Code systems, identifier systems and canonical URLs used across the FHIR layer.

Sources: nhs-standards.md sections 1-5 (BaRS, UK Core, NHS number, STarT Back, SNOMED CT).
The project's own CodeSystems live under the canonical base ``https://w3id.org/escape-fhir``; no SNOMED CT
or LOINC code is invented here.
"""

from __future__ import annotations

from typing import Final

FHIR_VERSION: Final = "4.0.1"

# --- the project's canonical base -------------------------------------------------------------
BASE: Final = "https://w3id.org/escape-fhir"
CS_PROGRAMME: Final = f"{BASE}/CodeSystem/escape-pain-programme"  # knee-hip, back
CS_CRITERION: Final = f"{BASE}/CodeSystem/eligibility-criterion"
CS_CRITERION_OUTCOME: Final = f"{BASE}/CodeSystem/eligibility-criterion-outcome"  # met, not-met, unknown
CS_DECISION: Final = f"{BASE}/CodeSystem/eligibility-decision"  # eligible, not-eligible, needs-review
CS_REFERRAL_SOURCE: Final = f"{BASE}/CodeSystem/referral-source"
CS_SITE: Final = f"{BASE}/CodeSystem/affected-site"
CS_REFERRER_ROLE: Final = f"{BASE}/CodeSystem/referrer-role"
CS_STARTBACK_ANSWER: Final = f"{BASE}/CodeSystem/startback-answer"
ID_REFERRAL: Final = f"{BASE}/Id/referral"  # the sender's referral id (ServiceRequest.identifier)

Q_KNEE_HIP: Final = f"{BASE}/Questionnaire/knee-hip-eligibility"
Q_BACK: Final = f"{BASE}/Questionnaire/back-eligibility"
Q_STARTBACK: Final = f"{BASE}/Questionnaire/startback"

# --- NHS identifier systems (nhs-standards.md 2.2, 2.4, 2.1) --------------------------------------
NHS_NUMBER: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANIZATION: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE: Final = "https://fhir.nhs.uk/Id/ods-site-code"
DOS_SERVICE_ID: Final = "https://fhir.nhs.uk/Id/dos-service-id"
SDS_USER_ID: Final = "https://fhir.nhs.uk/Id/sds-user-id"
REGISTRATION_SYSTEMS: Final = {
    "gmc": "https://fhir.hl7.org.uk/Id/gmc-number",
    "hcpc": "https://fhir.hl7.org.uk/Id/hcpc-number",
    "nmc": "https://fhir.hl7.org.uk/Id/nmc-number",
    "gphc": "https://fhir.hl7.org.uk/Id/gphc-number",
}

# --- UK Core ------------------------------------------------------------------------------------
EXT_NHS_NUMBER_VERIFICATION: Final = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
CS_NHS_NUMBER_VERIFICATION_ENGLAND: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
#: Retired UK Core code system that BaRS senders still use (nhs-standards.md 1.8).
CS_NHS_NUMBER_VERIFICATION_RETIRED: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"
NHS_NUMBER_VERIFICATION_DISPLAY: Final = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS number or patient detail conflict)",
    "06": "Trace in progress",
    "07": "Number not present and trace not required",
    "08": "Trace postponed (baby under six weeks old)",
}
#: Retired BaRS-era codes mapped to the England codes 01-08 (same order in both code systems).
NHS_NUMBER_VERIFICATION_RETIRED: Final = {
    "number-present-and-verified": "01",
    "number-present-but-not-traced": "02",
    "trace-required": "03",
    "trace-attempted": "04",
    "trace-needs-to-be-resolved": "05",
    "trace-in-progress": "06",
    "number-not-present-and-trace-not-required": "07",
    "trace-postponed": "08",
}
UKCORE: Final = "https://fhir.hl7.org.uk/StructureDefinition"

# --- BaRS (nhs-standards.md 1.3-1.5) ----------------------------------------------------------------
CS_MESSAGE_EVENTS_BARS: Final = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
CS_MESSAGE_REASON_BARS: Final = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
CS_MESSAGE_CATEGORY_SR: Final = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"
BARS_REFERRAL_DEFINITION: Final = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral"
#: BaRS: a cancellation is reason ``update`` with this MessageDefinition (nhs-standards.md 1.7).
BARS_CANCELLED_DEFINITION: Final = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-cancelled"
BARS_BUNDLE_PROFILE: Final = "https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"
#: Bundle.meta.versionId of the messages we send: the version of the BaRS application they follow
#: (nhs-standards.md 1.3; BaRS examples carry 1.0.0, 1.1.0, 1.0.0-alpha). No BaRS application covers MSK
#: referrals yet, so this names the first release of the referral payload rules the messages follow.
BARS_VERSION_ID: Final = "1.0.0"
#: The BaRS application major version received messages may carry (semantic versioning: any 1.x reads alike).
BARS_SUPPORTED_MAJOR: Final = "1"

# --- terminologies ---------------------------------------------------------------------------------
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
ADMINISTRATIVE_GENDER: Final = "http://hl7.org/fhir/administrative-gender"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"

#: SNOMED CT "Referral to physiotherapy service" (procedure), ServiceRequest.code (nhs-standards.md 5).
REFERRAL_TO_PHYSIOTHERAPY: Final = ("306170007", "Referral to physiotherapy service")

# --- STarT Back (LOINC; nhs-standards.md 4) ---------------------------------------------------------
STARTBACK_PANEL: Final = ("91349-1", "STarT Back Screening Tool panel")
STARTBACK_SUBSCORE: Final = ("91350-9", "Distress subscore [STarT Back]")
STARTBACK_TOTAL: Final = ("91351-7", "Total score [STarT Back]")
STARTBACK_RISK: Final = ("91352-5", "STarT Back Screening risk level")
STARTBACK_RISK_ANSWERS: Final = {
    "low": ("LA9194-7", "Low"),
    "medium": ("LA8982-6", "Medium"),
    "high": ("LA9193-9", "High"),
}
KEELE_COPYRIGHT: Final = (
    "STarT Back Screening Tool: Copyright (c) University of Keele. No licence is required for "
    "non-commercial use. To incorporate the tool into commercial products, contact the Keele University "
    "Impact Accelerator Unit. This copyright statement must be kept wherever the questionnaire appears."
)

# --- added for the translator ----------------------------------------------------------------------
CS_OBSERVATION: Final = f"{BASE}/CodeSystem/escape-pain-observation"  # eligibility-assessment
EXT_REFERRAL_SOURCE: Final = f"{BASE}/StructureDefinition/referral-source"
PROGRAMME_DISPLAY: Final = {
    "knee-hip": "ESCAPE-pain for knees and hips",
    "back": "ESCAPE-pain for backs",
}
PROFILE: Final = {
    "Patient": f"{UKCORE}/UKCore-Patient",
    "Practitioner": f"{UKCORE}/UKCore-Practitioner",
    "PractitionerRole": f"{UKCORE}/UKCore-PractitionerRole",
    "Organization": f"{UKCORE}/UKCore-Organization",
    "ServiceRequest": f"{UKCORE}/UKCore-ServiceRequest",
    "QuestionnaireResponse": f"{UKCORE}/UKCore-QuestionnaireResponse",
    "Observation": f"{UKCORE}/UKCore-Observation",
    "Condition": f"{UKCORE}/UKCore-Condition",
    "MessageHeader": f"{UKCORE}/UKCore-MessageHeader",
    "Bundle": f"{UKCORE}/UKCore-Bundle",
    "HealthcareService": f"{UKCORE}/UKCore-HealthcareService",
}
# The project's own profiles (escape_fhir.fhir.conformance defines them), derived from the UK Core ones.
SD: Final = f"{BASE}/StructureDefinition"
PROFILE_REFERRAL: Final = f"{SD}/EscapePainReferral"
PROFILE_ELIGIBILITY_RESPONSE: Final = f"{SD}/EscapePainEligibilityResponse"
PROFILE_STARTBACK_RESPONSE: Final = f"{SD}/StartBackResponse"
PROFILE_STARTBACK_SCORE: Final = f"{SD}/StartBackScore"
PROFILE_ELIGIBILITY_ASSESSMENT: Final = f"{SD}/EscapePainEligibilityAssessment"
PROFILE_MESSAGE_HEADER: Final = f"{SD}/EscapePainMessageHeader"
PROFILE_MESSAGE: Final = f"{SD}/EscapePainReferralMessage"
PROFILE_ACKNOWLEDGEMENT: Final = f"{SD}/EscapePainReferralAcknowledgement"
#: The ImplementationGuide of the project's FHIR package (escape_fhir.fhir.conformance, package escape-fhir.r4).
IMPLEMENTATION_GUIDE: Final = f"{BASE}/ImplementationGuide/escape-fhir.r4"
#: meta.profile by resource kind (the ``kind`` of builders.ResourceSet.add) where the project has its own
#: profile: a type alone cannot tell the eligibility from the STarT Back response, nor a score from the
#: eligibility Observation. Other kinds keep the UK Core profile of their type (PROFILE).
PROFILE_FOR_KIND: Final = {
    "service-request": PROFILE_REFERRAL,
    "eligibility-qr": PROFILE_ELIGIBILITY_RESPONSE,
    "startback-qr": PROFILE_STARTBACK_RESPONSE,
    "startback-total": PROFILE_STARTBACK_SCORE,
    "startback-subscore": PROFILE_STARTBACK_SCORE,
    "startback-risk": PROFILE_STARTBACK_SCORE,
    "eligibility": PROFILE_ELIGIBILITY_ASSESSMENT,
    "message-header": PROFILE_MESSAGE_HEADER,
}
#: meta.profile of a Bundle by Bundle.type: only the message has a project profile.
PROFILE_FOR_BUNDLE: Final = {"message": PROFILE_MESSAGE}
#: SNOMED CT "General practitioner" occupation (BaRS NHSD-Requesting-Practitioner example, nhs-standards 1.2).
SNOMED_GENERAL_PRACTITIONER: Final = ("62247001", "General practitioner")
