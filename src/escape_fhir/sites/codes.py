"""The canonical URLs and codes of the site directory (our own: no NHS or HL7 code says these things)."""

from __future__ import annotations

from typing import Final

from escape_fhir.fhir.codes import BASE, SD

ID_SITE: Final = f"{BASE}/Id/site"  # HealthcareService.identifier / Location.identifier: the directory's id
EXT_COVERAGE: Final = f"{SD}/site-coverage"
EXT_ACCEPTS: Final = f"{SD}/site-accepted-referral-source"
EXT_SIGNPOSTING: Final = f"{SD}/site-signposting"
CS_ROUTING: Final = f"{BASE}/CodeSystem/site-routing"
CS_METHOD: Final = f"{BASE}/CodeSystem/referral-method"
SP: Final = f"{BASE}/SearchParameter"
#: http://terminology.hl7.org/CodeSystem/service-referral-method (HealthcareService.referralMethod).
CS_SERVICE_REFERRAL_METHOD: Final = "http://terminology.hl7.org/CodeSystem/service-referral-method"
REFERRAL_METHOD_CODE = {"bars": "elec", "mesh": "elec", "email": "semail", "phone": "phone"}
#: Task.input / Task.output types (CS_ROUTING).
ROUTED_SITE, ROUTING_REASON, ROUTING_ALTERNATIVE, SIGNPOSTING, PARTICIPANT_SUMMARY = (
    "routed-site",
    "routing-reason",
    "routing-alternative",
    "signposting",
    "participant-summary",
)
ROUTING_TERMS = (
    (ROUTED_SITE, "Routed to site", "The ESCAPE-pain site (HealthcareService) a referral was routed to."),
    (ROUTING_REASON, "Routing reason", "Why that site was chosen, or why no site could be (one line each)."),
    (ROUTING_ALTERNATIVE, "Alternative site", "A site the referrer could turn to when no site takes the referral."),
    (SIGNPOSTING, "Signposting option", "An option the site gives participants at discharge (gym, leisure centre)."),
    (PARTICIPANT_SUMMARY, "Participant summary", "Words for the participant: the programme done and where next."),
)
METHOD_TERMS = (
    ("bars", "BaRS", "A FHIR message to the site's BaRS endpoint (Booking and Referral Standard)."),
    ("mesh", "MESH", "A FHIR message to the site's MESH mailbox."),
    ("email", "Email", "A referral letter by email to the site's referral address."),
    ("phone", "Phone", "A referral made by telephone to the site."),
)
