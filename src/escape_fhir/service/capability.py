"""The CapabilityStatement of ``GET /metadata``: exactly what this server implements (FHIR http.html#capabilities).

Built from the same tables the routes and services use, so it cannot claim more than they do.
"""

from __future__ import annotations

from typing import Any

from escape_fhir import __version__
from escape_fhir.fhir import codes
from escape_fhir.service.common import READ_TYPES
from escape_fhir.service.search import PARAMETERS, RESULT_PARAMS
from escape_fhir.sites.search import add_to_capability
from escape_fhir.storage.search_params import BY_TYPE, COMPOSITE, REFERENCE

Json = dict[str, Any]

_DOCS = {
    "ServiceRequest": "Referrals; status follows the triage Task (accepted -> active, rejected -> revoked, completed -> completed)",
    "Task": "Triage Tasks (code fulfill); PUT with If-Match to accept, reject (statusReason) or complete",
    "CommunicationRequest": "The hub's to-contact list (sites taking referrals only by email or phone); PUT with "
    "If-Match to mark an entry completed or revoked (statusReason)",
}
_RESULT_TYPES = {"_count": "number", "_offset": "number", "_sort": "special", "_include": "special"}
_MODIFIERS = {
    "token": ":not, :missing",
    "string": "starts with ignoring case and accents; :exact, :contains, :missing",
    "date": "prefixes eq ne gt lt ge le sa eb; :missing",
    "reference": "Type/id, id or URL; :Type, :missing; chains",
    "uri": "exact; :missing",
    "composite": "code$value, each system|code or code",
}


def _chains(resource_type: str) -> list[Json]:
    """``param.name`` of each reference parameter with one target type (``param:Type.name`` otherwise)."""
    out = []
    for param in BY_TYPE[resource_type].values():
        if param.type == REFERENCE and len(param.targets) == 1 and param.targets[0] in BY_TYPE:
            for name, inner in sorted(BY_TYPE[param.targets[0]].items()):
                if inner.type != COMPOSITE:
                    doc = f"chained: {param.name} ({param.targets[0]}) with {name}"
                    out.append({"name": f"{param.name}.{name}", "type": inner.type, "documentation": doc})
    return out


def _search_params(resource_type: str) -> list[Json]:
    out: list[Json] = [
        {"name": "_id", "type": "token"},
        {"name": "_lastUpdated", "type": "date", "documentation": _MODIFIERS["date"]},
    ]
    for name, param in sorted(BY_TYPE[resource_type].items()):
        where = f"{resource_type}.{param.path}" if param.path else "code and value[x] of the resource and components"
        out.append({"name": name, "type": param.type, "documentation": f"{where}; {_MODIFIERS[param.type]}"})
    out += _chains(resource_type)
    for name in RESULT_PARAMS:
        if name not in ("_include", "_revinclude"):
            out.append({"name": name, "type": _RESULT_TYPES.get(name, "token")})
    return out


def _includes(resource_type: str) -> tuple[list[str], list[str]]:
    forward = [f"{resource_type}:{n}" for n, p in sorted(BY_TYPE[resource_type].items()) if p.type == REFERENCE]
    reverse = [
        f"{kind}:{n}"
        for kind, params in sorted(BY_TYPE.items())
        for n, p in sorted(params.items())
        if p.type == REFERENCE and resource_type in p.targets and not p.canonical
    ]
    return [f for f in forward if not BY_TYPE[resource_type][f.split(":")[1]].canonical], reverse


def _resource(resource_type: str) -> Json:
    interactions = ["read", "vread", "history-instance"]
    if resource_type in PARAMETERS:
        interactions.append("search-type")
    if resource_type in ("Task", "CommunicationRequest"):
        interactions.append("update")
    entry: Json = {"type": resource_type}
    if resource_type in _DOCS:
        entry["documentation"] = _DOCS[resource_type]
    entry["interaction"] = [{"code": c} for c in interactions]
    entry["versioning"] = "versioned-update"
    entry["readHistory"] = True
    entry["updateCreate"] = False
    if resource_type in ("Task", "CommunicationRequest"):
        entry["conditionalUpdate"] = False
    if resource_type in PARAMETERS:
        entry.update(_include_lists(resource_type))
        entry["searchParam"] = _search_params(resource_type)
    entry["operation"] = [
        {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
    ]
    return entry


def _include_lists(resource_type: str) -> Json:
    """``searchInclude`` and ``searchRevInclude``, each only when it has a value (FHIR: no empty arrays)."""
    forward, reverse = _includes(resource_type)
    lists = {"searchInclude": forward, "searchRevInclude": reverse}
    return {name: values for name, values in lists.items() if values}


def _subscription() -> Json:
    return {
        "type": "Subscription",
        "documentation": "R4 rest-hook Subscriptions: criteria a search of this server; notifications through the "
        "outbox (retries, one per new version); status error with the reason after a failed attempt; "
        "GET /Subscription/{id}/$status (this server's own Parameters, not the R4B backport's $status): status, "
        "error and the notifications by state",
        "interaction": [
            {"code": c} for c in ("read", "vread", "update", "delete", "history-instance", "create", "search-type")
        ],
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": False,
        **_include_lists("Subscription"),
        "searchParam": _search_params("Subscription"),
    }


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
    resources.append(_subscription())
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
        # The profiles this server's answers claim are in this guide's package (escape-fhir package build).
        "implementationGuide": [codes.IMPLEMENTATION_GUIDE],
        "format": ["json", "xml", "application/fhir+json", "application/fhir+xml"],
        "rest": [rest],
        "messaging": [
            {
                "supportedMessage": [{"mode": "receiver", "definition": codes.BARS_REFERRAL_DEFINITION}],
                "documentation": "servicerequest-request with reason new, update or delete; X-Request-ID and X-Correlation-ID required",
            }
        ],
    }
