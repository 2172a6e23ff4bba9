"""Validation of FHIR R4 resources against base R4, UK Core and the ESCAPE-pain profiles.

Two separate axes (after HAPI's validation support chain):

* *where definitions come from*: :class:`~escape_fhir.validation.definitions.Definitions`, a chain of
  sources (the project's own profiles, folders, FHIR package ``.tgz`` files, the package cache
  ``~/.fhir/packages``, the compact base R4 model shipped in the package); never the network;
* *which checks run*: the validator walks an instance against snapshots and gathers every issue.

Validation never raises for bad content: it returns a :class:`ValidationResult` listing every issue with
its severity, code, message and exact FHIRPath location (``Bundle.entry[3].resource.item[0].answer[0]``).
"""

from escape_fhir.validation.api import validate
from escape_fhir.validation.result import ValidationResult

__all__ = ["ValidationResult", "validate"]
