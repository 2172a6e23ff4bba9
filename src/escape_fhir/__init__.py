"""escape-fhir: a FHIR R4 interoperability adapter for the NHS ESCAPE-pain programme.

The package is layered so that data flows one way::

    domain  ->  fhir  ->  validation  ->  storage / transport  ->  api / cli

``escape_fhir.domain`` is pure Python (referral model, eligibility rules, STarT Back scoring) and
imports nothing from the other layers.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
