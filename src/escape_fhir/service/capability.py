"""The CapabilityStatement of ``GET /metadata``: exactly what this server implements (FHIR http.html#capabilities).

Built from the same tables the routes and services use, so it cannot claim more than they do.
"""

from __future__ import annotations

from typing import Any

from escape_fhir import __version__
from escape_fhir.fhir import codes
from escape_fhir.service.common import READ_TYPES
from escape_fhir.service.search import COMMON, PARAMETERS
from escape_fhir.sites.search import add_to_capability

Json = dict[str, Any]

_SEARCH_TYPES = {"patient": "reference", "performer": "reference", "owner": "reference", "focus": "reference"}
_DOCS = {
    "ServiceRequest": "Referrals; status follows the triage Task (accepted -> active, rejected -> revoked, completed -> completed)",
    "Task": "Triage Tasks (code fulfill); PUT with If-Match to accept, reject (statusReason) or complete",
}


def _search_params(resource_type: str) -> list[Json]:
    names = sorted({*PARAMETERS[resource_type], *(c for c in COMMON if c.startswith("_") and c != "_format")})
    out = []
    for name in names:
        kind = "date" if name == "_lastUpdated" else "number" if name in ("_count", "_offset") else "token"
        kind = "special" if name == "_sort" else _SEARCH_TYPES.get(name, kind)
        kind = "token" if name == "patient.identifier" else kind
        out.append({"name": name, "type": kind})
    return out


def _resource(resource_type: str) -> Json:
    interactions = ["read", "vread", "history-instance"]
    if resource_type in PARAMETERS:
        interactions.append("search-type")
    if resource_type == "Task":
        interactions.append("update")
    entry: Json = {"type": resource_type}
    if resource_type in _DOCS:
        entry["documentation"] = _DOCS[resource_type]
    entry["interaction"] = [{"code": c} for c in interactions]
    entry["versioning"] = "versioned-update"
    entry["readHistory"] = True
    entry["updateCreate"] = False
    if resource_type == "Task":
        entry["conditionalUpdate"] = False
    if resource_type in PARAMETERS:
        entry["searchParam"] = _search_params(resource_type)
    entry["operation"] = [
        {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
    ]
    return entry


def capability_statement(base: str, secured: bool) -> Json:
    resources = [_resource(t) for t in READ_TYPES]
    resources.append(
        {
            "type": "Questionnaire",
            "documentation": "The project's Questionnaires (eligibility forms and STarT Back)",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": "url", "type": "uri"}],
        }
    )
    rest: Json = {"mode": "server"}
    if secured:
        rest["security"] = {
            "description": "Bearer tokens (configured static tokens, or RS256/RS384/RS512-signed JWT access "
            "tokens of configured OAuth2 issuers) with scopes submit, triage, read, validate; /metadata is open",
        }
    rest["resource"] = resources
    rest["interaction"] = [
        {
            "code": "transaction",
            "documentation": "DELETE Type/id, POST (ifNoneExist identifier=), PUT Type/id or Type?identifier= "
            "(conditional update), GET Type/id or a search, processed in that order; conditional references "
            "Type?identifier=system|value; a Task only through triage (scope triage, ifMatch required)",
        }
    ]
    rest["operation"] = [
        {
            "name": "process-message",
            "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
        },
        {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
    ]
    add_to_capability(rest)  # the site directory's searches and $route (escape_fhir.sites)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "kind": "instance",
        "software": {"name": "escape-fhir", "version": __version__},
        "implementation": {"description": "ESCAPE-pain referral receiver (BaRS-aligned)", "url": base},
        "fhirVersion": codes.FHIR_VERSION,
        "format": ["json", "xml", "application/fhir+json", "application/fhir+xml"],
        "rest": [rest],
        "messaging": [
            {
                "supportedMessage": [{"mode": "receiver", "definition": codes.BARS_REFERRAL_DEFINITION}],
                "documentation": "servicerequest-request with reason new, update or delete; X-Request-ID and X-Correlation-ID required",
            }
        ],
    }
