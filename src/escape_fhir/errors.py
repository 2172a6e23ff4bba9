"""The one exception tree of escape-fhir.

::

    EscapeFhirError
     +-- InputError            input that cannot be used (bad JSON, bad field, unknown answer)
     |    +-- ReferralInputError     a referral document that fails its schema (carries field errors)
     |    +-- ScoringInputError      STarT Back answers missing or unknown
     |    +-- FhirFormatError        FHIR JSON/XML that cannot be parsed (incl. refused unsafe XML)
     +-- MappingError          a FHIR resource or Bundle that cannot be mapped to a referral;
                               carries the OperationOutcome issues saying where and why

Every error carries its context; third-party errors are translated at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class EscapeFhirError(Exception):
    """Base class of every error raised on purpose by escape-fhir."""


class InputError(EscapeFhirError):
    """Input that cannot be used as given."""


@dataclass(frozen=True)
class FieldError:
    """One bad field: a dotted/indexed location and a readable message."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ReferralInputError(InputError):
    """A referral document that does not meet the referral input format."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("invalid referral: " + "; ".join(str(e) for e in self.errors))


class ScoringInputError(InputError):
    """STarT Back answers that cannot be scored (an item missing or an answer unknown)."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("cannot score STarT Back: " + "; ".join(str(e) for e in self.errors))


class FhirFormatError(InputError):
    """FHIR content that cannot be read (malformed JSON or XML, refused unsafe XML, unknown element)."""

    def __init__(self, message: str, location: str = "") -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


@dataclass(frozen=True)
class Issue:
    """A problem found in FHIR content, shaped like an OperationOutcome issue.

    ``severity`` is one of fatal / error / warning / information; ``code`` is a FHIR issue-type code;
    ``location`` is a FHIRPath expression with indices, e.g. ``Bundle.entry[3].resource.subject``.
    """

    severity: str
    code: str
    message: str
    location: str = ""


class MappingError(EscapeFhirError):
    """FHIR content that is well formed but cannot be mapped to a referral."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(f"{i.location}: {i.message}" if i.location else i.message for i in issues))
