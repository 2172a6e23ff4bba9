"""Checks of NHS identifier values: the NHS number check digit and the shape of ODS codes.

* NHS number (``https://fhir.nhs.uk/Id/nhs-number``): ten digits whose tenth is the Modulus 11 check digit
  (NHS Data Dictionary, NHS NUMBER; nhs-standards.md 3.1). The check digit is computed by the
  ``nhs-number`` package (DESIGN.md: use the package, do not hand-roll it). A failure is an error: the
  Data Dictionary makes the check mandatory.
* ODS codes (``ods-organization-code``, ``ods-site-code``): "1 to 9 alphanumeric characters"
  (digital.nhs.uk, Organisations and services; nhs-standards.md 3.2). No official regex exists, so a code
  of another shape is a warning, not an error.
"""

from __future__ import annotations

import re
from typing import Any

import nhs_number

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes

__all__ = ["check_identifier"]

Json = dict[str, Any]

_TEN_DIGITS = re.compile(r"[0-9]{10}")
_ODS_CODE = re.compile(r"[A-Z0-9]{1,9}")
_ODS_SYSTEMS = frozenset({codes.ODS_ORGANIZATION, codes.ODS_SITE})


def check_identifier(identifier: Json, location: str) -> list[Issue]:
    """Issues with the ``value`` of one Identifier (JSON) at ``location`` (e.g. ``Patient.identifier[0]``).

    Identifiers of other systems, and identifiers without a string value, give no issue here (cardinality
    and type are the structure checks' business).
    """
    value = identifier.get("value")
    system = identifier.get("system")
    if not isinstance(value, str) or not isinstance(system, str | None):
        return []  # wrong JSON types are the structure checks' business
    if system == codes.NHS_NUMBER:
        return _nhs_number(value, f"{location}.value")
    if system in _ODS_SYSTEMS:
        return _ods_code(value, f"{location}.value")
    return []


def _nhs_number(value: str, location: str) -> list[Issue]:
    if _TEN_DIGITS.fullmatch(value) is None:
        # The package would accept "943 476 5919"; a FHIR identifier value carries the bare ten digits.
        return [Issue("error", "value", f"NHS number {value!r} must be exactly 10 digits", location)]
    if not nhs_number.is_valid(value):
        message = f"NHS number {value!r} is not valid: its check digit fails the Modulus 11 check"
        return [Issue("error", "value", message, location)]
    return []


def _ods_code(value: str, location: str) -> list[Issue]:
    if _ODS_CODE.fullmatch(value) is None:
        message = f"ODS code {value!r} should be 1 to 9 upper-case letters or digits"
        return [Issue("warning", "value", message, location)]
    return []
