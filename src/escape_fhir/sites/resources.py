"""A site as FHIR: HealthcareService, its Organization (ODS code), Location and Endpoints.

Ids are derived from the site's id (``HealthcareService/site-<id>``, ``Location/site-<id>``,
``Endpoint/site-<id>-<method>``) and the ODS code (``Organization/ods-<code>``), so a re-import writes new
versions of the same resources (their history kept) instead of new ones. What FHIR R4 has no element for
is in our extensions (profiles/): the postcode districts and sectors covered (``site-coverage``), the
referral sources accepted (``site-accepted-referral-source``) and the signposting options at discharge
(``site-signposting``). The programme is ``HealthcareService.program``.
"""

from __future__ import annotations

from typing import Any

from escape_fhir.fhir import codes
from escape_fhir.sites import codes as sc
from escape_fhir.sites.model import Method, Site
from escape_fhir.sites.routing import PROGRAMME_NAMES

Json = dict[str, Any]
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def service_id(site_id: str) -> str:
    return f"site-{site_id}"


def organization_id(ods_code: str) -> str:
    return f"ods-{ods_code}"


def endpoint_id(site_id: str, kind: str) -> str:
    return f"site-{site_id}-{kind}"


def _identifier(site: Site) -> list[Json]:
    return [{"system": sc.ID_SITE, "value": site.id}]


def organization(site: Site) -> Json:
    return {
        "resourceType": "Organization",
        "id": organization_id(site.ods_code),
        "identifier": [{"system": ODS, "value": site.ods_code}],
        "active": True,
        "name": site.organisation,
    }


def location(site: Site) -> Json:
    loc: Json = {
        "resourceType": "Location",
        "id": service_id(site.id),
        "identifier": _identifier(site),
        "status": "active" if site.active else "inactive",
        "name": site.location_name or site.name,
        "mode": "instance",
        "address": {
            k: v
            for k, v in {
                "line": list(site.address) or None,
                "city": site.city or None,
                "postalCode": site.postcode,
                "country": "GB",
            }.items()
            if v
        },
        "managingOrganization": {"reference": f"Organization/{organization_id(site.ods_code)}"},
    }
    if site.position:
        loc["position"] = {"latitude": site.latitude, "longitude": site.longitude}
    return loc


def _address(method: Method) -> str:
    if method.kind == "email":
        return f"mailto:{method.address}"
    if method.kind == "phone":
        return f"tel:{method.address.replace(' ', '')}"
    return method.address


def endpoint(site: Site, method: Method) -> Json:
    payload = "FHIR message Bundle (BaRS servicerequest-request)" if method.kind in ("bars", "mesh") else "referral"
    found: Json = {
        "resourceType": "Endpoint",
        "id": endpoint_id(site.id, method.kind),
        "identifier": _identifier(site),
        "status": "active" if site.active else "off",
        "connectionType": {"system": sc.CS_METHOD, "code": method.kind},
        "name": f"{site.name}: {method.kind}",
        "managingOrganization": {"reference": f"Organization/{organization_id(site.ods_code)}"},
        "payloadType": [{"text": payload}],
        "address": _address(method),
    }
    if method.workflow:
        found["header"] = [f"Mex-WorkflowID: {method.workflow}"]
    return found


def _telecom(site: Site) -> list[Json]:
    pairs = (("phone", site.phone), ("email", site.email), ("url", site.website))
    return [{"system": system, "value": value} for system, value in pairs if value]


def healthcare_service(site: Site) -> Json:
    extensions: list[Json] = [{"url": sc.EXT_COVERAGE, "valueString": area} for area in site.coverage]
    extensions += [
        {"url": sc.EXT_ACCEPTS, "valueCoding": {"system": codes.CS_REFERRAL_SOURCE, "code": s}} for s in site.sources
    ]
    extensions += [{"url": sc.EXT_SIGNPOSTING, "valueString": s.line()} for s in site.signposting]
    service: Json = {
        "resourceType": "HealthcareService",
        "id": service_id(site.id),
        "extension": extensions,
        "identifier": _identifier(site),
        "active": site.active,
        "providedBy": {
            "reference": f"Organization/{organization_id(site.ods_code)}",
            "identifier": {"system": ODS, "value": site.ods_code},
            "display": site.organisation,
        },
        "location": [{"reference": f"Location/{service_id(site.id)}"}],
        "name": site.name,
        "telecom": _telecom(site) or None,
        "program": [
            {
                "coding": [{"system": codes.CS_PROGRAMME, "code": site.programme}],
                "text": PROGRAMME_NAMES[site.programme],
            }
        ],
        "referralMethod": _referral_methods(site),
        "availableTime": [
            {"daysOfWeek": list(t.days), "availableStartTime": f"{t.start}:00", "availableEndTime": f"{t.end}:00"}
            for t in site.class_times
        ]
        or None,
        "endpoint": [{"reference": f"Endpoint/{endpoint_id(site.id, m.kind)}"} for m in site.methods],
    }
    return {k: v for k, v in service.items() if v is not None}


def _referral_methods(site: Site) -> list[Json]:
    seen = dict.fromkeys(sc.REFERRAL_METHOD_CODE[m.kind] for m in site.methods)
    return [{"coding": [{"system": sc.CS_SERVICE_REFERRAL_METHOD, "code": code}]} for code in seen]


def site_resources(site: Site) -> list[Json]:
    """Every resource of one site: Organization, Location, Endpoints, then the HealthcareService."""
    return [organization(site), location(site), *(endpoint(site, m) for m in site.methods), healthcare_service(site)]


def signposting_of(service: Json) -> list[str]:
    """The signposting options written on a HealthcareService."""
    return [
        str(e["valueString"])
        for e in service.get("extension") or []
        if isinstance(e, dict) and e.get("url") == sc.EXT_SIGNPOSTING and isinstance(e.get("valueString"), str)
    ]
