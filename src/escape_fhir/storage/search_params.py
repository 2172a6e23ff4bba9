"""The search parameters this server supports: one declarative table (FHIR R4 search parameter registry,
https://hl7.org/fhir/R4/searchparameter-registry.html).

Each row names the resource type, the parameter, its FHIR search type, the element it reads (the registry's
FHIRPath, reduced to a dotted path; ``[x]`` is a choice element) and, for references, the types it may point
to. The index (:mod:`escape_fhir.storage.index`) extracts every row's values when a resource is written, the
search (:mod:`escape_fhir.service.search`) parses and matches them, and the CapabilityStatement lists them:
supporting a new parameter is a row here (plus an extractor when a dotted path cannot say it).

Where each type's values are kept: ``token``, ``reference``, ``uri`` and ``composite`` values in
``search_token``, ``string`` values in ``search_string`` (with a case- and accent-folded copy), ``date``
values in ``search_date`` as a half-open UTC range. ``_id`` and ``_lastUpdated`` are columns of
``resource_current``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
#: A custom extractor: (system, value) pairs of a token-like parameter.
Extractor = Callable[[Json], Iterator[tuple[str, str]]]

TOKEN, REFERENCE, STRING, DATE, URI, COMPOSITE = "token", "reference", "string", "date", "uri", "composite"
#: The index table that holds each search type's values.
TABLE = {
    TOKEN: "search_token",
    REFERENCE: "search_token",
    URI: "search_token",
    COMPOSITE: "search_token",
    STRING: "search_string",
    DATE: "search_date",
}


@dataclass(frozen=True)
class SearchParam:
    resource_type: str
    name: str
    type: str
    #: Dotted element path from the resource (``subject``, ``name.family``, ``effective[x]``).
    path: str
    #: Resource types a reference parameter points to (the first is assumed for a bare id).
    targets: tuple[str, ...] = ()
    #: A reference to a canonical URL (``QuestionnaireResponse.questionnaire``): matched as written.
    canonical: bool = False
    extract: Extractor | None = None
    documentation: str = ""

    @property
    def table(self) -> str:
        return TABLE[self.type]


def _codings(value: Any) -> Iterator[tuple[str, str]]:
    """(system, code) of a CodeableConcept or Coding."""
    if not isinstance(value, dict):
        return
    codings: list[Any] = value["coding"] if isinstance(value.get("coding"), list) else [value]
    for coding in codings:
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            system = coding.get("system")
            yield (system if isinstance(system, str) else "", coding["code"])


def code_value_concept(resource: Json) -> Iterator[tuple[str, str]]:
    """``Observation.code-value-concept`` (composite of ``code`` and ``value[x] as CodeableConcept``), for the
    Observation and for each of its components. Stored as ``system$system`` and ``code$code`` so one row
    holds one pair (search.html#composite: both parts must match the same pair)."""
    for part in [resource, *(c for c in resource.get("component") or [] if isinstance(c, dict))]:
        for code_system, code in _codings(part.get("code")):
            for value_system, value in _codings(part.get("valueCodeableConcept")):
                yield f"{code_system}${value_system}", f"{code}${value}"


_PATIENT = ("Patient",)
_PERFORMERS = ("HealthcareService", "Organization", "Practitioner", "PractitionerRole")
_REQUESTERS = ("Practitioner", "PractitionerRole", "Organization", "Patient")
_P = SearchParam

#: Every supported parameter besides ``_id`` and ``_lastUpdated`` (which every searchable type has).
PARAMS: tuple[SearchParam, ...] = (
    _P("ServiceRequest", "identifier", TOKEN, "identifier"),
    _P("ServiceRequest", "status", TOKEN, "status"),
    _P("ServiceRequest", "patient", REFERENCE, "subject", _PATIENT),
    _P("ServiceRequest", "subject", REFERENCE, "subject", _PATIENT),
    _P("ServiceRequest", "performer", REFERENCE, "performer", _PERFORMERS),
    _P("ServiceRequest", "requester", REFERENCE, "requester", _REQUESTERS),
    _P("ServiceRequest", "code", TOKEN, "code"),
    _P("ServiceRequest", "authored", DATE, "authoredOn"),
    _P("Task", "identifier", TOKEN, "identifier"),
    _P("Task", "status", TOKEN, "status"),
    _P("Task", "owner", REFERENCE, "owner", _PERFORMERS),
    _P("Task", "focus", REFERENCE, "focus", ("ServiceRequest",)),
    _P("Task", "patient", REFERENCE, "for", _PATIENT),
    _P("Task", "authored-on", DATE, "authoredOn"),
    _P("Task", "modified", DATE, "lastModified"),
    _P("Task", "business-status", TOKEN, "businessStatus"),
    _P("Patient", "identifier", TOKEN, "identifier"),
    _P("Patient", "name", STRING, "name"),
    _P("Patient", "family", STRING, "name.family"),
    _P("Patient", "given", STRING, "name.given"),
    _P("Patient", "birthdate", DATE, "birthDate"),
    _P("Patient", "gender", TOKEN, "gender"),
    _P("Condition", "identifier", TOKEN, "identifier"),
    _P("Condition", "patient", REFERENCE, "subject", _PATIENT),
    _P("Condition", "subject", REFERENCE, "subject", _PATIENT),
    _P("Condition", "code", TOKEN, "code"),
    _P("Condition", "clinical-status", TOKEN, "clinicalStatus"),
    _P("Observation", "identifier", TOKEN, "identifier"),
    _P("Observation", "patient", REFERENCE, "subject", _PATIENT),
    _P("Observation", "subject", REFERENCE, "subject", _PATIENT),
    _P("Observation", "status", TOKEN, "status"),
    _P("Observation", "code", TOKEN, "code"),
    _P("Observation", "value-concept", TOKEN, "valueCodeableConcept"),
    _P("Observation", "code-value-concept", COMPOSITE, "", extract=code_value_concept),
    _P("Observation", "date", DATE, "effective[x]"),
    _P("Observation", "derived-from", REFERENCE, "derivedFrom", ("QuestionnaireResponse", "Observation")),
    _P("QuestionnaireResponse", "identifier", TOKEN, "identifier"),
    _P("QuestionnaireResponse", "patient", REFERENCE, "subject", _PATIENT),
    _P("QuestionnaireResponse", "subject", REFERENCE, "subject", _PATIENT),
    _P("QuestionnaireResponse", "questionnaire", REFERENCE, "questionnaire", ("Questionnaire",), canonical=True),
    _P("QuestionnaireResponse", "authored", DATE, "authored"),
    _P("QuestionnaireResponse", "status", TOKEN, "status"),
    _P("Encounter", "identifier", TOKEN, "identifier"),
    _P("Encounter", "patient", REFERENCE, "subject", _PATIENT),
    _P("Encounter", "subject", REFERENCE, "subject", _PATIENT),
    _P("Encounter", "status", TOKEN, "status"),
    _P("Encounter", "class", TOKEN, "class"),
    _P("Encounter", "date", DATE, "period"),
    _P("Organization", "identifier", TOKEN, "identifier"),
    _P("Organization", "name", STRING, "name"),
    _P("HealthcareService", "identifier", TOKEN, "identifier"),
    _P("HealthcareService", "name", STRING, "name"),
    _P("HealthcareService", "organization", REFERENCE, "providedBy", ("Organization",)),
    _P("Subscription", "status", TOKEN, "status"),
    _P("Subscription", "type", TOKEN, "channel.type"),
    _P("Subscription", "url", URI, "channel.endpoint"),
    _P("Subscription", "criteria", STRING, "criteria"),
)

#: Resource type -> parameter name -> row.
BY_TYPE: dict[str, dict[str, SearchParam]] = {}
for _row in PARAMS:
    BY_TYPE.setdefault(_row.resource_type, {})[_row.name] = _row

#: ``identifier`` is indexed for every resource type (conditional creates and references name any type by it).
IDENTIFIER = SearchParam("*", "identifier", TOKEN, "identifier")


def params_of(resource_type: str) -> dict[str, SearchParam]:
    """The declared parameters of a type (empty when the type is not searchable)."""
    return BY_TYPE.get(resource_type, {})
