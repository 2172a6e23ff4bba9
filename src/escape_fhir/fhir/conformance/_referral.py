"""Profiles of the referral message: the ServiceRequest, its referral-source extension, the MessageHeader
and the message Bundle (BaRS alignment, nhs-standards.md 1.3-1.6; UK Core bases, section 2.1).

Each element rule is something the translator always emits and a triage service relies on; rules that
BaRS states but this project cannot meet yet (e.g. a BaRS use-case category code, none exists for MSK:
nhs-standards.md 9.5) are left out rather than invented.
"""

from __future__ import annotations

from typing import Final

from escape_fhir.fhir import codes
from escape_fhir.fhir.conformance._elements import (
    binding,
    canonical_is,
    element,
    extension,
    invariant,
    profile,
    reference,
    slicing,
)
from escape_fhir.fhir.conformance._terminology import VS_MESSAGE_REASON, VS_REFERRAL_STATUS, value_set_of
from escape_fhir.fhir.resources import Json

EXT_REFERRAL_SOURCE_ID: Final = codes.EXT_REFERRAL_SOURCE.rsplit("/", 1)[1]
VS_PROGRAMME: Final = value_set_of(codes.CS_PROGRAMME)
VS_REFERRAL_SOURCE: Final = value_set_of(codes.CS_REFERRAL_SOURCE)


def referral_source_extension() -> Json:
    url = codes.EXT_REFERRAL_SOURCE
    elements = [
        element(
            "Extension",
            short="Who sent the referral",
            definition="The route the referral came by: a GP, an MSK triage service, a physiotherapy provider, "
            "an orthopaedic surgeon, the person themselves or another service.",
        ),
        element("Extension.extension", max="0"),
        element("Extension.url", fixedUri=url),
        element("Extension.value[x]", min=1, type=[{"code": "Coding"}], binding=binding(VS_REFERRAL_SOURCE)),
    ]
    return extension(
        EXT_REFERRAL_SOURCE_ID,
        "ReferralSource",
        "ESCAPE-pain referral source",
        "The route an ESCAPE-pain referral came by. UK Core's source-of-service-request extension takes SNOMED "
        "CT codes, and no SNOMED CT code has been confirmed for each of these routes, so the project codes "
        "them itself.",
        ["ServiceRequest"],
        elements,
    )


def referral() -> Json:
    sr = "ServiceRequest"
    elements = [
        element(
            sr,
            short="An ESCAPE-pain referral",
            definition="A referral of one person to an ESCAPE-pain programme (knees and hips, or backs), with the "
            "answers and scores that support it.",
        ),
        # The sliced element is at least as required as its slices (as snapshot generators expect).
        element(f"{sr}.extension", min=1, slicing=slicing("value", "url", "Extensions are told apart by url.")),
        element(
            f"{sr}.extension:referralSource",
            short="Who sent the referral",
            min=1,
            max="1",
            type=[{"code": "Extension", "profile": [codes.EXT_REFERRAL_SOURCE]}],
        ),
        element(
            f"{sr}.identifier", min=1, slicing=slicing("value", "system", "Identifiers are told apart by their system.")
        ),
        element(
            f"{sr}.identifier:referralId",
            short="The sender's referral id",
            min=1,
            max="1",
            definition="The id the sender gave the referral; kept across update and cancel messages.",
        ),
        element(f"{sr}.identifier:referralId.system", min=1, fixedUri=codes.ID_REFERRAL),
        element(f"{sr}.identifier:referralId.value", min=1),
        element(f"{sr}.status", binding=binding(VS_REFERRAL_STATUS, description="BaRS referral statuses.")),
        # BaRS: intent is always "plan"; category carries the message category "referral" (1.5).
        element(f"{sr}.intent", fixedCode="plan"),
        element(
            f"{sr}.category",
            min=1,
            max="1",
            patternCodeableConcept={"coding": [{"system": codes.CS_MESSAGE_CATEGORY_SR, "code": "referral"}]},
        ),
        element(f"{sr}.code", min=1),
        element(
            f"{sr}.code.coding", min=1, slicing=slicing("value", "system", "Codings are told apart by their system.")
        ),
        element(
            f"{sr}.code.coding:programme",
            short="The ESCAPE-pain programme referred to",
            min=1,
            max="1",
            binding=binding(VS_PROGRAMME),
        ),
        element(f"{sr}.code.coding:programme.system", min=1, fixedUri=codes.CS_PROGRAMME),
        element(f"{sr}.code.coding:programme.code", min=1),
        element(f"{sr}.subject", type=reference("Patient")),
        element(f"{sr}.authoredOn", min=1),
        element(f"{sr}.requester", min=1, short="The referrer, or the patient for a self-referral"),
        element(f"{sr}.supportingInfo", min=1, short="Eligibility and STarT Back answers and results"),
    ]
    return profile(
        "EscapePainReferral",
        "ServiceRequest",
        f"{codes.UKCORE}/UKCore-ServiceRequest",
        "ESCAPE-pain referral",
        "A referral to ESCAPE-pain sent as a BaRS-style ServiceRequest: always coded with the programme, "
        "dated, naming its sender and source, and carrying the eligibility answers and assessment (and for "
        "backs the STarT Back screening) in supportingInfo.",
        elements,
    )


def message_header() -> Json:
    mh = "MessageHeader"
    elements = [
        element(
            mh,
            short="Header of an ESCAPE-pain referral message",
            constraint=[
                invariant(
                    "esc-mh-1",
                    "The definition is BaRS's referral request, or its cancellation (a hub taking a referral back "
                    "from a site it re-routed it away from)",
                    canonical_is("definition", codes.BARS_REFERRAL_DEFINITION, codes.BARS_CANCELLED_DEFINITION),
                    codes.PROFILE_MESSAGE_HEADER,
                )
            ],
        ),
        element(
            f"{mh}.event[x]",
            type=[{"code": "Coding"}],
            patternCoding={"system": codes.CS_MESSAGE_EVENTS_BARS, "code": "servicerequest-request"},
        ),
        element(f"{mh}.reason", min=1, binding=binding(VS_MESSAGE_REASON)),
        element(
            f"{mh}.focus",
            min=1,
            max="1",
            type=reference(codes.PROFILE_REFERRAL),
            short="The referral (ServiceRequest) the message is about",
        ),
        element(f"{mh}.definition", min=1),
    ]
    return profile(
        "EscapePainMessageHeader",
        "MessageHeader",
        f"{codes.UKCORE}/UKCore-MessageHeader",
        "ESCAPE-pain referral message header",
        "The first entry of an ESCAPE-pain referral message: the BaRS servicerequest-request event with its "
        "reason (new, update or delete), focused on the one referral it carries; its definition BaRS's "
        "referral request or, for a cancellation, BaRS's cancellation.",
        elements,
    )


def message_bundle() -> Json:
    url = codes.PROFILE_MESSAGE
    service_request = "entry.where(resource is ServiceRequest)"
    invariants = [
        # BaRS: every resource carries meta.lastUpdated, so a receiver can tell what an update changed (1.3).
        invariant(
            "esc-bdl-1",
            "Every resource in the message has meta.lastUpdated",
            "entry.resource.all(meta.lastUpdated.exists())",
            url,
        ),
        # BaRS: entries are identified and referenced by urn:uuid fullUrls (1.3).
        invariant(
            "esc-bdl-2", "Every entry has a urn:uuid: fullUrl", "entry.all(fullUrl.startsWith('urn:uuid:'))", url
        ),
        # BaRS MessageDefinition: exactly one ServiceRequest, and the header's focus is it (1.4, 1.6).
        invariant("esc-bdl-3", "The message carries exactly one ServiceRequest", f"{service_request}.count() = 1", url),
        invariant(
            "esc-bdl-4",
            "The MessageHeader's focus is the ServiceRequest entry",
            f"entry.first().resource.focus.reference in {service_request}.fullUrl",
            url,
        ),
    ]
    elements = [
        element("Bundle", short="An ESCAPE-pain referral message", constraint=invariants),
        element(
            "Bundle.meta.versionId",
            min=1,
            short="The BaRS application version the message follows (BaRS: MUST)",
        ),
        element("Bundle.identifier", min=1),
        element("Bundle.type", fixedCode="message"),
        element("Bundle.timestamp", min=1),
        element("Bundle.entry", min=2, short="The MessageHeader first, then the referral and what it references"),
        element("Bundle.entry.fullUrl", min=1),
        element("Bundle.entry.resource", min=1),
    ]
    return profile(
        "EscapePainReferralMessage",
        "Bundle",
        f"{codes.UKCORE}/UKCore-Bundle",
        "ESCAPE-pain referral message",
        "A BaRS-aligned message Bundle carrying one ESCAPE-pain referral, posted to $process-message.",
        elements,
    )


def acknowledgement_bundle() -> Json:
    """The 200 answer of ``$process-message`` (BaRS synchronous response, nhs-standards.md 1.7): the request
    message mirrored back with the receiver's ids and its Encounter (planned; cancelled when the message
    withdraws the referral). Entries are the receiver's
    resources now, at ``<base>/<Type>/<id>`` and referenced as ``Type/id``, so the referral message's
    urn:uuid rules (esc-bdl-2, esc-bdl-4) do not hold for it; these do."""
    url = codes.PROFILE_ACKNOWLEDGEMENT
    service_request = "%resource.entry.where(resource is ServiceRequest)"
    invariants = [
        invariant(
            "esc-ack-1",
            "Every resource in the acknowledgement has meta.lastUpdated",
            "entry.resource.all(meta.lastUpdated.exists())",
            url,
        ),
        invariant(
            "esc-ack-2",
            "The MessageHeader's focus is the ServiceRequest entry (by fullUrl or as Type/id)",
            "entry.first().resource.focus.reference.all($this in "
            f"{service_request}.select(fullUrl | (resource.resourceType + '/' + resource.id)))",
            url,
        ),
        invariant(
            "esc-ack-3",
            "The receiver's Encounter carries its reference for the referral: planned, or cancelled after a withdrawal",
            "entry.where(resource is Encounter and (resource.status = 'planned' or resource.status = 'cancelled')"
            " and resource.identifier.exists()).exists()",
            url,
        ),
    ]
    elements = [
        element("Bundle", short="The acknowledgement of an ESCAPE-pain referral message", constraint=invariants),
        element("Bundle.type", fixedCode="message"),
        element("Bundle.timestamp", min=1),
        element("Bundle.entry", min=2, short="The MessageHeader first, the referral with the receiver's ids"),
        element("Bundle.entry.fullUrl", min=1),
        element("Bundle.entry.resource", min=1),
    ]
    return profile(
        "EscapePainReferralAcknowledgement",
        "Bundle",
        f"{codes.UKCORE}/UKCore-Bundle",
        "ESCAPE-pain referral acknowledgement",
        "The answer of $process-message to an ESCAPE-pain referral message: the message with the receiver's "
        "resource ids, a planned Encounter naming the receiver's reference, and any warnings.",
        elements,
    )


def referral_profiles() -> list[Json]:
    return [referral_source_extension(), referral(), message_header(), message_bundle(), acknowledgement_bundle()]
