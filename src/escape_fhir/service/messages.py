"""What a ``$process-message`` request must be before anything is stored (BaRS, nhs-standards.md 1.3-1.5).

A Bundle of type ``message`` with an id (the message id that makes delivery idempotent, FHIR messaging.html
"Reliable delivery"), its MessageHeader first, event ``servicerequest-request`` of ``message-events-bars``,
reason ``new``, ``update`` or ``delete`` and a focus that resolves to a ServiceRequest in the Bundle.
Malformed messages get 400; well-formed messages this server does not handle get 422 (BaRS receiver
pseudo-code: ``invariant`` -> 400, ``not-supported`` -> 422).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.fhir.bundle_index import resolve_reference
from escape_fhir.service.outcomes import OutcomeError, Problem

Json = dict[str, Any]

REASONS = ("new", "update", "delete")
#: ServiceRequest statuses that withdraw a referral (BaRS cancellation: reason update, status revoked or
#: entered-in-error; nhs-standards.md 1.5, 1.7).
WITHDRAWN = ("revoked", "entered-in-error")


@dataclass
class Message:
    bundle: Json
    bundle_id: str
    reason: str
    service_request_at: int
    keys: dict[str, int] = field(default_factory=dict)  # fullUrl and Type/id -> entry index

    @property
    def entries(self) -> list[Json]:
        entries: list[Json] = self.bundle["entry"]
        return entries

    def resource(self, i: int) -> Json:
        res = self.entries[i].get("resource")
        return res if isinstance(res, dict) else {}

    @property
    def service_request(self) -> Json:
        return self.resource(self.service_request_at)

    @property
    def withdraws(self) -> bool:
        """A delete, or an update whose ServiceRequest is revoked or entered in error."""
        return self.reason == "delete" or self.service_request.get("status") in WITHDRAWN

    def resolve(self, reference: Any) -> int | None:
        return resolve_reference(self.keys, reference)


def _bad(message: str, location: str, code: str = "invalid") -> OutcomeError:
    return OutcomeError(Problem.BAD_REQUEST, [Issue("error", code, message, location)])


def _unsupported(message: str, location: str) -> OutcomeError:
    return OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "not-supported", message, location)])


def _index(entries: list[Any]) -> dict[str, int]:
    keys: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _bad("a Bundle entry must be an object", f"Bundle.entry[{i}]", "structure")
        res = entry.get("resource")
        res = res if isinstance(res, dict) else {}
        if isinstance(entry.get("fullUrl"), str):
            keys.setdefault(entry["fullUrl"], i)
        if isinstance(res.get("id"), str):
            keys.setdefault(f"{res.get('resourceType')}/{res['id']}", i)
    return keys


def read_message(bundle: Json) -> Message:
    """The message's parts, or OutcomeError (400 malformed, 422 not handled here)."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
        found = bundle.get("resourceType") if bundle.get("resourceType") != "Bundle" else f"a {bundle.get('type')}"
        raise _bad(f"$process-message takes a Bundle of type message, not {found}", "Bundle.type", "structure")
    if not isinstance(bundle.get("id"), str) or not bundle["id"]:
        raise _bad("Bundle.id is required: it identifies the message (FHIR messaging.html)", "Bundle.id", "required")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise _bad("a message Bundle needs entries, its MessageHeader first", "Bundle.entry", "required")
    keys = _index(entries)
    header = entries[0].get("resource") or {}
    if header.get("resourceType") != "MessageHeader":
        raise _bad("the first entry of a message Bundle must be its MessageHeader", "Bundle.entry[0]", "structure")
    _check_event(header)
    reason = _reason(header)
    message = Message(bundle, bundle["id"], reason, -1, keys)
    message.service_request_at = _focus(message, header)
    return message


def bars_version(bundle: Json) -> list[Issue]:
    """``Bundle.meta.versionId``, the BaRS application version (nhs-standards.md 1.3): a major version other
    than ours is 422 ``not-supported`` (BaRS receiver pseudo-code); missing, 400 ``invariant`` when the Bundle
    claims BaRS's message profile, else a warning: GP systems and engines that do not follow BaRS send no
    version, and their referrals are not refused for it (a lost referral is the worse harm)."""
    meta = _object(bundle.get("meta"))
    version = meta.get("versionId")
    where = "Bundle.meta.versionId"
    if isinstance(version, str) and version:
        if version.split(".", 1)[0] != codes.BARS_SUPPORTED_MAJOR:
            raise _unsupported(
                f"BaRS application version {version} is not supported here: this receiver reads version "
                f"{codes.BARS_SUPPORTED_MAJOR}.x messages",
                where,
            )
        return []
    profiles = meta.get("profile")
    if isinstance(profiles, list) and codes.BARS_BUNDLE_PROFILE in profiles:
        raise _bad("Bundle.meta.versionId, the BaRS application version, is required by BaRS", where, "invariant")
    text = (
        "Bundle.meta.versionId (the BaRS application version) is missing: read as a BaRS "
        f"{codes.BARS_SUPPORTED_MAJOR}.x message"
    )
    return [Issue("warning", "invariant", text, where)]


def _check_event(header: Json) -> None:
    event = header.get("eventCoding") or {}
    if event.get("system") != codes.CS_MESSAGE_EVENTS_BARS or event.get("code") != "servicerequest-request":
        got = f"{event.get('system')}|{event.get('code')}"
        raise _unsupported(
            f"this endpoint handles the BaRS event servicerequest-request only, not {got}",
            "Bundle.entry[0].resource.eventCoding",
        )


def _reason(header: Json) -> str:
    where = "Bundle.entry[0].resource.reason"
    for coding in (header.get("reason") or {}).get("coding", []):
        if isinstance(coding, dict) and coding.get("system") == codes.CS_MESSAGE_REASON_BARS:
            if coding.get("code") in REASONS:
                return str(coding["code"])
            raise _unsupported(f"message reason {coding.get('code')!r} is not new, update or delete", where)
    raise _bad(f"MessageHeader.reason needs a coding of {codes.CS_MESSAGE_REASON_BARS}", where, "required")


def _focus(message: Message, header: Json) -> int:
    for j, focus in enumerate(header.get("focus") or []):
        i = message.resolve(focus)
        if i is not None and message.resource(i).get("resourceType") == "ServiceRequest":
            return i
        if i is None:
            where = f"Bundle.entry[0].resource.focus[{j}]"
            raise _bad("the MessageHeader's focus does not resolve to an entry of the Bundle", where, "not-found")
    raise _bad("the MessageHeader's focus must be a ServiceRequest", "Bundle.entry[0].resource.focus", "required")


def sender_identifier(service_request: Json) -> str | None:
    """The sender's business identifier of the referral, ``system|value`` (ours first, else the first one)."""
    idents = [i for i in service_request.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    idents.sort(key=lambda i: i.get("system") != codes.ID_REFERRAL)
    return f"{idents[0].get('system', '')}|{idents[0]['value']}" if idents else None


def retired_verification_codes(entries: list[Json]) -> list[Issue]:
    """Warnings for Patients whose NHS number verification uses the retired UK Core code system.

    BaRS senders still send ``UKCore-NHSNumberVerificationStatus`` codes such as
    ``number-present-and-verified`` (nhs-standards.md 1.8); they are accepted, never a reason to refuse.
    """
    found = []
    for e, entry in enumerate(entries):
        res = _object(_object(entry).get("resource"))
        if res.get("resourceType") != "Patient":
            continue
        for i, ident in enumerate(_objects(res.get("identifier"))):
            for j, ext in enumerate(_objects(ident.get("extension"))):
                if ext.get("url") != codes.EXT_NHS_NUMBER_VERIFICATION:
                    continue
                for coding in _objects(_object(ext.get("valueCodeableConcept")).get("coding")):
                    if coding.get("system") == codes.CS_NHS_NUMBER_VERIFICATION_RETIRED:
                        text = (
                            f"retired UK Core NHS number verification code {coding.get('code')!r} accepted "
                            f"(BaRS still uses it); current senders use {codes.CS_NHS_NUMBER_VERIFICATION_ENGLAND}"
                        )
                        where = f"Bundle.entry[{e}].resource.identifier[{i}].extension[{j}]"
                        found.append(Issue("warning", "code-invalid", text, where))
    return found


def _object(value: Any) -> Json:
    """``value`` when it is a JSON object, else empty (this runs before validation reports the wrong type)."""
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[Json]:
    """The JSON objects of an array (anything else: none), for reads that run before validation."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
