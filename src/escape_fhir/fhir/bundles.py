"""Bundles of a referral: a BaRS-aligned ``message``, a ``transaction`` and a ``collection``.

Message (nhs-standards.md 1.3-1.4): MessageHeader first, event ``servicerequest-request`` of
``message-events-bars``, reason new/update/delete of ``message-reason-bars``, ``focus`` the ServiceRequest,
``urn:uuid:`` fullUrls, ``meta.lastUpdated`` on every resource, ``timestamp`` set.
Transaction: each entry a conditional create (POST with ``ifNoneExist`` for Patient by NHS number and
Organization by ODS code) so a server keeps one Patient per NHS number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from escape_fhir import __version__
from escape_fhir.domain import Referral
from escape_fhir.domain.referral import Organisation
from escape_fhir.fhir import codes
from escape_fhir.fhir.builders import ResourceSet, receiver_kind, referral_resources, resource_id
from escape_fhir.fhir.resources import Json, checked


class BundleKind(StrEnum):
    MESSAGE = "message"
    TRANSACTION = "transaction"
    COLLECTION = "collection"


class MessageReason(StrEnum):
    NEW = "new"
    UPDATE = "update"
    DELETE = "delete"


#: ServiceRequest.status per message reason: a delete revokes the referral (nhs-standards.md 1.5, 1.7).
STATUS_FOR_REASON = {MessageReason.NEW: "active", MessageReason.UPDATE: "active", MessageReason.DELETE: "revoked"}


def fhir_instant(moment: datetime | None = None) -> str:
    """A FHIR instant in UTC with second precision, e.g. ``2026-11-26T12:00:00Z``."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def translate(
    referral: Referral,
    kind: BundleKind | str = BundleKind.MESSAGE,
    *,
    reason: MessageReason | str = MessageReason.NEW,
    timestamp: str | None = None,
    check: bool = False,
) -> Json:
    """Translate a referral into a Bundle (FHIR JSON dict) of the given kind.

    ``check=True`` also parses the Bundle with the ``fhir.resources`` R4B models and raises if it is not
    well-formed R4. That costs about as much as the translation itself, so it is off by default and on in
    the CLI; the tests check every kind of Bundle this way.
    """
    kind, reason = BundleKind(kind), MessageReason(reason)
    timestamp = timestamp or fhir_instant()
    rs = referral_resources(referral, timestamp, status=STATUS_FOR_REASON[reason])
    if kind is BundleKind.MESSAGE:
        bundle = message_bundle(referral, rs, reason)
    elif kind is BundleKind.TRANSACTION:
        bundle = transaction_bundle(rs)
    else:
        bundle = _bundle(rs, "collection", [{"fullUrl": u, "resource": r} for u, r in rs.entries])
    return checked(bundle) if check else bundle


def _bundle(rs: ResourceSet, bundle_type: str, entries: list[Json], bundle_id: str | None = None) -> Json:
    bid = bundle_id or resource_id(rs.referral_id, f"bundle-{bundle_type}-{rs.timestamp}")
    profile = codes.PROFILE_FOR_BUNDLE.get(bundle_type, codes.PROFILE["Bundle"])
    bundle: Json = {
        "resourceType": "Bundle",
        "id": bid,
        "meta": {"lastUpdated": rs.timestamp, "profile": [profile]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bid}"},
        "type": bundle_type,
        "timestamp": rs.timestamp,
        "entry": entries,
    }
    return bundle


def message_bundle(referral: Referral, rs: ResourceSet, reason: MessageReason) -> Json:
    """A BaRS-aligned referral message: MessageHeader first, then the ServiceRequest and what it references."""
    bundle_id = resource_id(rs.referral_id, f"message-{reason.value}-{rs.timestamp}")
    service_request_url = rs.entries[0][0]
    # MessageHeader.destination.receiver and .sender name an Organization: none when the site is known only
    # by its DoS service id (the destination endpoint still names it).
    receiver_url = rs.ref("receiver") if referral.receiver and receiver_kind(referral.receiver) == "receiver" else None
    # A self-referral arrives through the receiving site's own form: the site is then the sender.
    sender_org = referral.referrer.organisation if referral.referrer else referral.receiver
    if referral.referrer:
        sender_url = rs.ref("referrer-organization") if referral.referrer.organisation else None
    else:
        sender_url = receiver_url
    header = message_header(rs, referral, reason, service_request_url, receiver_url, sender_url, sender_org)
    header_url = rs.add("message-header", header)
    header_entry = rs.entries.pop()
    assert header_entry[0] == header_url
    entries = [{"fullUrl": u, "resource": r} for u, r in [header_entry, *rs.entries]]
    bundle = _bundle(rs, "message", entries, bundle_id)
    # BaRS: Bundle.meta.versionId is the version of the BaRS application the message follows (1.3).
    bundle["meta"] = {"versionId": codes.BARS_VERSION_ID, **bundle["meta"]}
    return bundle


def message_header(
    rs: ResourceSet,
    referral: Referral,
    reason: MessageReason,
    focus: str,
    receiver: str | None,
    sender: str | None,
    sender_org: Organisation | None,
) -> Json:
    header: Json = {
        "resourceType": "MessageHeader",
        "eventCoding": {"system": codes.CS_MESSAGE_EVENTS_BARS, "code": "servicerequest-request"},
    }
    destination = _endpoint(referral.receiver) if referral.receiver is not None else None
    if destination is not None and receiver is not None:
        header["destination"] = [{"endpoint": destination, "receiver": {"reference": receiver}}]
    if sender:
        header["sender"] = {"reference": sender}
    source_endpoint = (_endpoint(sender_org) if sender_org is not None else None) or f"urn:escape-fhir:{rs.referral_id}"
    header["source"] = {
        "name": "escape-fhir",
        "software": "escape-fhir",
        "version": __version__,
        "endpoint": source_endpoint,
    }
    header["reason"] = {"coding": [{"system": codes.CS_MESSAGE_REASON_BARS, "code": reason.value}]}
    header["focus"] = [{"reference": focus}]
    header["definition"] = codes.BARS_REFERRAL_DEFINITION
    return header


def _endpoint(org: Organisation) -> str | None:
    """BaRS endpoints are written ``system|value``: the DoS service id where known, else the ODS code (None:
    an organisation known only by name has no endpoint)."""
    if org.service_id:
        return f"{codes.DOS_SERVICE_ID}|{org.service_id}"
    return f"{codes.ODS_ORGANIZATION}|{org.ods_code}" if org.ods_code else None


def transaction_bundle(rs: ResourceSet) -> Json:
    entries = []
    for full_url, resource in rs.entries:
        request: Json = {"method": "POST", "url": resource["resourceType"]}
        condition = _if_none_exist(resource)
        if condition:
            request["ifNoneExist"] = condition
        body = {k: v for k, v in resource.items() if k != "id"}  # POST: the server assigns ids
        entries.append({"fullUrl": full_url, "resource": body, "request": request})
    return _bundle(rs, "transaction", entries)


def _if_none_exist(resource: Json) -> str | None:
    kind = resource["resourceType"]
    wanted = {"Patient": codes.NHS_NUMBER, "Organization": codes.ODS_ORGANIZATION}.get(kind)
    for ident in resource.get("identifier", []) if wanted else []:
        if ident.get("system") == wanted:
            return f"identifier={wanted}|{ident['value']}"
    return None
