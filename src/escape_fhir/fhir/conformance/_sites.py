"""Conformance resources of the site directory (issue 12): its extensions on HealthcareService, its code
systems (Task inputs of routing, Endpoint connection types) and the SearchParameters of its searches."""

from __future__ import annotations

from typing import Final

from escape_fhir.fhir import codes
from escape_fhir.fhir.conformance._elements import binding, element, extension
from escape_fhir.fhir.conformance._terminology import Terms, _metadata, code_system, whole_system_value_set
from escape_fhir.fhir.resources import Json
from escape_fhir.sites import codes as sc

VS_REFERRAL_SOURCE: Final = f"{codes.BASE}/ValueSet/referral-source"


def _simple(url: str, name: str, title: str, description: str, value: Json) -> Json:
    elements = [
        element("Extension", short=title, definition=description),
        element("Extension.extension", max="0"),
        element("Extension.url", fixedUri=url),
        element("Extension.value[x]", min=1, **value),
    ]
    return extension(url.rsplit("/", 1)[1], name, title, description, ["HealthcareService"], elements)


def site_extensions() -> list[Json]:
    return [
        _simple(
            sc.EXT_COVERAGE,
            "SiteCoverage",
            "Postcode area an ESCAPE-pain site covers",
            "A UK postcode district (LS6) or sector (LS6 1) whose residents the site takes. R4's coverageArea "
            "takes Location resources, which would need a boundary per district; a site's team lists districts.",
            {"type": [{"code": "string"}]},
        ),
        _simple(
            sc.EXT_ACCEPTS,
            "SiteAcceptedReferralSource",
            "Referral source an ESCAPE-pain site accepts",
            "A route by which the site takes referrals (GP, MSK triage, physiotherapy, orthopaedic surgeon, "
            "self-referral, other): each site decides its own (ESCAPE-pain referrer guidance).",
            {"type": [{"code": "Coding"}], "binding": binding(VS_REFERRAL_SOURCE)},
        ),
        _simple(
            sc.EXT_SIGNPOSTING,
            "SiteSignposting",
            "Signposting option at discharge",
            "Where the site signposts participants after the 6-week programme: a local gym, a leisure centre or "
            "other self-management; carried to the referrer when the referral is completed.",
            {"type": [{"code": "string"}]},
        ),
    ]


def site_terms() -> list[Terms]:
    return [
        Terms(sc.CS_ROUTING, "ESCAPE-pain site routing", "What routing records on a triage Task.", sc.ROUTING_TERMS),
        Terms(sc.CS_METHOD, "ESCAPE-pain referral method", "How a site takes referrals.", sc.METHOD_TERMS),
    ]


#: (code, base, type, expression, description) of each search parameter the directory defines.
SEARCH_PARAMETERS: Final = (
    (
        "postcode",
        "HealthcareService",
        "special",
        f"HealthcareService.extension('{sc.EXT_COVERAGE}')",
        "Sites covering a UK postcode: its sector (LS6 1) or its district (LS6) is in the site's coverage.",
    ),
    (
        "coverage",
        "HealthcareService",
        "token",
        f"HealthcareService.extension('{sc.EXT_COVERAGE}').value",
        "Sites whose coverage lists exactly this district or sector.",
    ),
    (
        "referral-source",
        "HealthcareService",
        "token",
        f"HealthcareService.extension('{sc.EXT_ACCEPTS}').value",
        "Sites that accept referrals from this source.",
    ),
)


def search_parameter(code: str, base: str, kind: str, expression: str, description: str) -> Json:
    sp_id = f"{base}-{code}"
    resource = _metadata("SearchParameter", sp_id, f"{sc.SP}/{sp_id}", f"{base} {code}", description)
    resource.pop("title")
    return resource | {
        "code": code,
        "base": [base],
        "type": kind,
        "expression": expression,
        "xpathUsage": "normal",
    }


def site_profiles() -> list[Json]:
    terms = site_terms()
    return [
        *site_extensions(),
        *(code_system(t) for t in terms),
        *(whole_system_value_set(t) for t in terms),
        *(search_parameter(*row) for row in SEARCH_PARAMETERS),
        route_operation(),
    ]


def route_operation() -> Json:
    """``$route``: a referral in, the sites that take it (or the alternatives) with the reasons out."""
    resource = _metadata(
        "OperationDefinition",
        "route",
        f"{codes.BASE}/OperationDefinition/route",
        "Route a referral to its ESCAPE-pain site",
        "The sites covering the patient's postcode that run the referral's programme and accept its source, "
        "best first with the reason for each; when none does, the nearest sites that would take the patient "
        "another way.",
    )
    resource.pop("title")

    def param(name: str, use: str, kind: str | None, maximum: str, doc: str) -> Json:
        found: Json = {"name": name, "use": use, "min": 0 if use == "out" and name != "routed" else 1}
        found |= {"max": maximum, "documentation": doc}
        if kind:
            found["type"] = kind
        return found

    parts = [
        param("site", "out", "Reference", "1", "The site's HealthcareService"),
        param("rank", "out", "integer", "1", "1 for the best"),
        param("match", "out", "code", "1", "sector, district (covers the postcode), distance or area"),
        param("distanceKm", "out", "decimal", "1", "Kilometres, when measured"),
        param("reason", "out", "string", "*", "One rule that applied"),
    ]
    for part in parts:
        part["min"] = 0 if part["name"] in ("distanceKm", "reason") else 1
    choice = param("choice", "out", None, "*", "A site that takes the referral, best first") | {"part": parts}
    alternative = param("alternative", "out", None, "*", "A site the referrer could turn to when none takes it")
    return resource | {
        "kind": "operation",
        "code": "route",
        "system": True,
        "type": True,
        "instance": False,
        "resource": ["ServiceRequest"],
        "parameter": [
            param("resource", "in", "Bundle", "1", "The referral: a message, transaction or collection Bundle"),
            param("routed", "out", "boolean", "1", "Whether a site takes the referral"),
            param("summary", "out", "string", "1", "The choice and why, or why none"),
            param("distanceBasis", "out", "string", "1", "How distances were measured, or why they were not"),
            choice,
            alternative | {"part": parts},
        ],
    }
