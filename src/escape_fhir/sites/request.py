"""What routing needs from a referral: its pathway, the patient's postcode and its source.

A referral comes as our referral JSON or as a FHIR Bundle (any sender's, read by
:func:`escape_fhir.fhir.readers.read_referral`); a referral that has no patient postcode, or one that is not a
UK postcode, cannot be routed (MappingError naming the field).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from escape_fhir.domain import Referral, load_referral
from escape_fhir.errors import Issue, MappingError
from escape_fhir.fhir import jsonio
from escape_fhir.fhir.formats import parse, sniff
from escape_fhir.fhir.readers import read_referral
from escape_fhir.sites.postcode import Postcode, parse_postcode

Json = dict[str, Any]
POSTCODE_FIELD = "patient.address.postcode"


@dataclass(frozen=True)
class RouteRequest:
    pathway: str
    postcode: Postcode
    source: str


def request_of(referral: Referral) -> RouteRequest:
    address = referral.patient.address
    if address is None or not address.postcode:
        raise MappingError([Issue("error", "required", "the patient's postcode is needed to route", POSTCODE_FIELD)])
    try:
        postcode = parse_postcode(address.postcode)
    except ValueError as exc:
        raise MappingError([Issue("error", "value", str(exc), POSTCODE_FIELD)]) from None
    return RouteRequest(referral.pathway.value, postcode, referral.source.value)


def referral_of(content: Json) -> Referral:
    """A referral from a FHIR Bundle (``resourceType`` present) or our referral JSON."""
    if "resourceType" in content:
        return read_referral(content).referral
    return load_referral(content)


def request_from_bytes(data: bytes) -> RouteRequest:
    """From a file's bytes: FHIR XML, FHIR JSON (``resourceType``) or our referral JSON."""
    if sniff(data) == "xml":
        return request_of(referral_of(parse(data, "xml")))
    content = jsonio.loads(data)  # FhirFormatError for what is not JSON (or is nested too deep)
    if "resourceType" in content:
        return request_of(read_referral(content).referral)
    return request_of(load_referral(data))
