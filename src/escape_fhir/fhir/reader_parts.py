"""Finding things in a Bundle, and reading plain FHIR elements into the referral input format.

Helpers of :mod:`escape_fhir.fhir.readers`; :func:`resolve_reference` also serves the endpoint's intake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from escape_fhir.fhir import codes
from escape_fhir.fhir.resources import Json


@dataclass
class BundleIndex:
    """The Bundle's entries, found by fullUrl or by ``Type/id``."""

    entries: list[Json]
    keys: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, bundle: Json) -> BundleIndex:
        entries = [e for e in bundle.get("entry", []) if isinstance(e, dict)]
        index = cls(entries)
        for i, entry in enumerate(entries):
            res = entry.get("resource") or {}
            if isinstance(entry.get("fullUrl"), str):
                index.keys.setdefault(entry["fullUrl"], i)
            if res.get("id"):
                index.keys.setdefault(f"{res.get('resourceType')}/{res['id']}", i)
        return index

    def resource(self, i: int) -> Json:
        res = self.entries[i].get("resource")
        return res if isinstance(res, dict) else {}

    def resolve(self, reference: Any) -> int | None:
        return resolve_reference(self.keys, reference)

    def of_type(self, resource_type: str) -> list[int]:
        return [i for i in range(len(self.entries)) if self.resource(i).get("resourceType") == resource_type]


def resolve_reference(keys: Mapping[str, int], reference: Any) -> int | None:
    """The entry a Reference points at, by fullUrl or ``Type/id``; None when it is not in the Bundle."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str):
        return None
    if ref in keys:
        return keys[ref]
    parts = ref.rstrip("/").split("/")
    # An absolute or versioned URL: match on its last Type/id (FHIR R4 Bundle, "Resolving references").
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return keys.get("/".join(parts[-2:])) if len(parts) >= 2 else None


def at(i: int, path: str = "") -> str:
    return f"Bundle.entry[{i}].resource" + (f".{path}" if path else "")


def find_identifier(resource: Json, system: str) -> str | None:
    for ident in resource.get("identifier", []):
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def official_name(names: list[Json]) -> tuple[int, Json | None]:
    for k, name in enumerate(names):
        if name.get("use") == "official":
            return k, name
    return (0, names[0]) if names else (0, None)


def read_name(name: Json) -> Json:
    out: Json = {"given": list(name.get("given", [])), "family": name.get("family")}
    if not name.get("family") and name.get("text"):
        # A name sent only as text: the last word is taken as the family name.
        words = str(name["text"]).split()
        out = {"given": words[:-1] or words, "family": words[-1]}
    if name.get("prefix"):
        out["prefix"] = list(name["prefix"])
    return out


def read_telecom(telecom: list[Json]) -> Json:
    out: Json = {}
    for point in telecom:
        key = {"phone": "phone", "email": "email"}.get(point.get("system", ""))
        if key and key not in out and point.get("value"):
            out[key] = point["value"]
    return out


def read_address(address: Json) -> Json:
    out: Json = {}
    if address.get("line"):
        out["lines"] = list(address["line"])
    if address.get("city"):
        out["city"] = address["city"]
    if "postalCode" in address:
        out["postcode"] = address["postalCode"]
    return out


def read_role(role_res: Json) -> str:
    for concept in role_res.get("code", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == codes.CS_REFERRER_ROLE:
                return str(coding.get("code"))
            if coding.get("system") == codes.SNOMED and coding.get("code") == codes.SNOMED_GENERAL_PRACTITIONER[0]:
                return "gp"
    return "other"


def programme_code(sr: Json) -> str | None:
    for coding in (sr.get("code") or {}).get("coding", []):
        if coding.get("system") == codes.CS_PROGRAMME:
            return str(coding.get("code"))
    return None


def referral_source(sr: Json) -> str | None:
    for ext in sr.get("extension", []):
        if ext.get("url") == codes.EXT_REFERRAL_SOURCE:
            return str((ext.get("valueCoding") or {}).get("code"))
    return None


def date_part(value: Any) -> Any:
    return value[:10] if isinstance(value, str) else value
