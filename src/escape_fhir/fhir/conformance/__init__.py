"""The project's own FHIR conformance resources, defined in Python (the source of truth).

* StructureDefinitions (differentials on UK Core, canonical base ``https://w3id.org/escape-fhir``): the
  referral ServiceRequest with its referral-source extension, the eligibility and STarT Back
  QuestionnaireResponses, the STarT Back score and eligibility assessment Observations, the referral
  message Bundle and its MessageHeader, and the ``$process-message`` acknowledgement Bundle;
* the CodeSystems of the project's own codes and a ValueSet of each, plus ValueSets over LOINC, BaRS and
  FHIR codes the profiles bind to;
* the three Questionnaires (:mod:`escape_fhir.fhir.questionnaires`);
* the ImplementationGuide that lists them and names the packages they depend on.

:func:`write_package` writes them as a FHIR package folder (``package.json``, ``.index.json``; FHIR
packages.html), which ``scripts/generate.py`` keeps in ``profiles/`` and ``escape-fhir package build``
archives (:mod:`escape_fhir.fhir.package`). Nothing here reads that folder: an
installed escape-fhir has none.
"""

from __future__ import annotations

from escape_fhir.fhir.conformance._package import (
    PACKAGE_NAME,
    conformance_resources,
    file_name,
    package_manifest,
    write_package,
)

__all__ = ["PACKAGE_NAME", "conformance_resources", "file_name", "package_manifest", "write_package"]
