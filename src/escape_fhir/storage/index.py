"""What a resource is found by: the search tokens stored for its current version.

One table per resource type of the search parameters the server supports (FHIR R4 search parameter
registry: ``ServiceRequest.subject`` is ``patient``, ``Task.for`` is ``patient``, ``Task.owner`` is
``owner``...). References are stored as written in the stored resource (``Patient/123``); tokens as
``system`` and ``value`` (``system`` empty when the element has none).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Token:
    param: str
    system: str
    value: str


#: Search parameter -> (kind, element) per resource type; ``identifier`` applies to every type.
PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "ServiceRequest": {
        "status": ("code", "status"),
        "patient": ("reference", "subject"),
        "performer": ("reference", "performer"),
    },
    "Task": {
        "status": ("code", "status"),
        "owner": ("reference", "owner"),
        "focus": ("reference", "focus"),
        "patient": ("reference", "for"),
    },
    "QuestionnaireResponse": {"patient": ("reference", "subject"), "status": ("code", "status")},
    "Observation": {"patient": ("reference", "subject"), "status": ("code", "status")},
    "Encounter": {"patient": ("reference", "subject"), "status": ("code", "status")},
    "Condition": {"patient": ("reference", "subject")},
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _identifiers(resource: Json) -> Iterator[Token]:
    for ident in _as_list(resource.get("identifier")):
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            yield Token("identifier", str(ident.get("system", "")), ident["value"])


def tokens_of(resource: Json) -> list[Token]:
    """The search tokens of one resource (its identifiers and its type's parameters)."""
    found = list(_identifiers(resource))
    for param, (kind, element) in PARAMETERS.get(resource.get("resourceType", ""), {}).items():
        for item in _as_list(resource.get(element)):
            if kind == "code" and isinstance(item, str):
                found.append(Token(param, "", item))
            elif kind == "reference" and isinstance(item, dict) and isinstance(item.get("reference"), str):
                found.append(Token(param, "", item["reference"]))
    return [t for t in found if len(t.value) <= 255 and len(t.system) <= 255]
