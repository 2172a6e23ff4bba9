"""The BaRS request headers of an outbound message (nhs-standards.md 1.2).

The ``NHSD-*`` headers are Base64-encoded JSON: a FHIR ``Organization`` with the sender's ODS code
(``NHSD-End-User-Organisation``), a FHIR ``Device`` naming the sending software (``NHSD-Requesting-Software``)
and ``{"value", "system"}`` of the receiver's DoS service id (``NHSD-Target-Identifier``). ``Accept`` names the
BaRS Core version. ``use-context`` is filled from the Bundle when it carries every part.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escape_fhir import __version__
from escape_fhir.fhir.formats import MIME

__all__ = ["BARS_VERSION", "SenderIdentity", "b64_json", "decode_b64_json", "message_headers", "use_context"]

#: The BaRS Core version named in ``Accept`` (spec 1.4.0, nhs-standards.md 1.2).
BARS_VERSION = "1.4.0"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
DOS_SERVICE_ID_SYSTEM = "https://fhir.nhs.uk/Id/dos-service-id"
#: Identifier system of the sending software in NHSD-Requesting-Software (the project's canonical base).
DEVICE_SYSTEM = "https://w3id.org/escape-fhir/Id/software"
_USECASES = "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars"
_MESSAGE_CATEGORY = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"


@dataclass(frozen=True)
class SenderIdentity:
    """Who sends: the end-user organisation (ODS code and name), the software, and the default receiver.

    ``target_service_id`` is the receiver's DoS / Endpoint Catalogue service id (NHSD-Target-Identifier);
    ``send_message`` may name another one per message.
    """

    ods_code: str
    org_name: str
    software_name: str = "escape-fhir"
    software_version: str = __version__
    software_id: str = "escape-fhir"
    target_service_id: str = ""


def b64_json(obj: Mapping[str, Any]) -> str:
    """Compact JSON, UTF-8, standard Base64 (the encoding of every ``NHSD-*`` header)."""
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def decode_b64_json(value: str) -> Any:
    """The JSON inside an ``NHSD-*`` header (the receiver's and the tests' side of :func:`b64_json`)."""
    return json.loads(base64.b64decode(value, validate=True))


def organisation(sender: SenderIdentity) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": ODS_SYSTEM, "value": sender.ods_code}],
        "name": sender.org_name,
    }


def device(sender: SenderIdentity) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_SYSTEM, "value": sender.software_id}],
        "deviceName": [{"name": sender.software_name, "type": "manufacturer-name"}],
        "version": [{"value": sender.software_version}],
    }


def message_headers(
    sender: SenderIdentity,
    *,
    request_id: str,
    correlation_id: str,
    fmt: str,
    target_service_id: str = "",
    bundle: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Every BaRS header of one request except ``Authorization`` (added per attempt by the client)."""
    headers = {
        "Content-Type": MIME[fmt],
        "Accept": f"{MIME[fmt]}; version={BARS_VERSION}",
        "X-Request-ID": request_id,
        "X-Correlation-ID": correlation_id,
        "NHSD-End-User-Organisation": b64_json(organisation(sender)),
        "NHSD-Requesting-Software": b64_json(device(sender)),
    }
    target = target_service_id or sender.target_service_id
    if target:
        headers["NHSD-Target-Identifier"] = b64_json({"value": target, "system": DOS_SERVICE_ID_SYSTEM})
    context = use_context(bundle) if bundle is not None else None
    if context:
        headers["use-context"] = context
    return headers


def use_context(bundle: Mapping[str, Any]) -> str | None:
    """``<use case>|<message category>|<event>|<reason>`` from a message Bundle (nhs-standards.md 1.2), or
    None when the Bundle lacks a part (e.g. ESCAPE-pain has no BaRS use-case code, nhs-standards.md 9.5)."""
    resources = [e.get("resource") or {} for e in bundle.get("entry") or [] if isinstance(e, Mapping)]
    header = next((r for r in resources if r.get("resourceType") == "MessageHeader"), {})
    request = next((r for r in resources if r.get("resourceType") == "ServiceRequest"), {})
    categories = [c for cc in request.get("category") or [] for c in cc.get("coding") or []]
    reasons = (header.get("reason") or {}).get("coding") or [{}]
    parts = [
        _code(categories, _USECASES),
        _code(categories, _MESSAGE_CATEGORY),
        (header.get("eventCoding") or {}).get("code"),
        reasons[0].get("code"),
    ]
    found = [p for p in parts if isinstance(p, str) and p]
    return "|".join(found) if len(found) == len(parts) else None


def _code(codings: list[dict[str, Any]], system: str) -> str | None:
    return next((c.get("code") for c in codings if c.get("system") == system), None)
