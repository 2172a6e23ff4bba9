"""The one exception tree of escape-fhir.

::

    EscapeFhirError
     +-- InputError            input that cannot be used (bad JSON, bad field, unknown answer)
     |    +-- ReferralInputError     a referral document that fails its schema (carries field errors)
     |    +-- ScoringInputError      STarT Back answers missing or unknown
     |    +-- RedFlagInputError      a site's red-flag list (ESCAPE_FHIR_RED_FLAGS) with bad rows
     |    +-- SiteImportError        a site directory file (escape_fhir.sites) with bad rows
     |    +-- FhirFormatError        FHIR JSON/XML that cannot be parsed (incl. refused unsafe XML)
     +-- MappingError          a FHIR resource or Bundle that cannot be mapped to a referral;
     |                         carries the OperationOutcome issues saying where and why
     +-- DeliveryError         a message the outbound client (escape_fhir.transport) did not deliver
     |    +-- ReceiverRejected      the receiver's final refusal (4xx other than 408/429, or a 5xx other than
     |    |                         503 that carries an OperationOutcome): status, OperationOutcome, headers.
     |    |                         Never retried: sending the same message again gets the same answer
     |    +-- ReceiverUnavailable   408, 429, 503, connection failures and communication failures (an error
     |    |                         with no OperationOutcome, a success without the echoed X-* ids) still
     |    |                         there after the last attempt, or a Retry-After longer than the client may
     |    |                         wait: try again later with the same X-Request-ID
     |    +-- AuthError             the NHS API platform token endpoint refused the signed JWT or could not
     |                              be reached (``transient`` says whether a later try may succeed)
     +-- MeshError             the MESH mailbox service refused a request or could not be reached
                               (escape_fhir.transport.mesh; ``transient`` says whether a later try may succeed)

Every error carries its context; third-party errors are translated at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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


class RedFlagInputError(InputError):
    """A site's red-flag list that cannot be used: every bad row is named."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("invalid red-flag list: " + "; ".join(str(e) for e in self.errors))


class SiteImportError(InputError):
    """A site directory (CSV or JSON) that cannot be imported: every bad row and column is named."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("invalid site directory, nothing imported: " + "; ".join(str(e) for e in self.errors))


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


class DeliveryError(EscapeFhirError):
    """A message that was not delivered; ``request_id`` is its X-Request-ID (reuse it to send it again)."""

    def __init__(self, message: str, *, request_id: str = "", attempts: int = 0) -> None:
        self.request_id = request_id
        self.attempts = attempts
        super().__init__(message)


def _outcome_text(outcome: Mapping[str, Any] | None) -> str:
    """The BaRS codes and diagnostics of an OperationOutcome's issues, for an error's message."""
    texts = []
    for issue in (outcome or {}).get("issue") or []:
        codings = ((issue.get("details") or {}).get("coding")) or [{}]
        code = codings[0].get("code") or issue.get("code") or ""
        texts.append(" ".join(t for t in (code, issue.get("diagnostics") or "") if t))
    return "; ".join(t for t in texts if t)


class ReceiverRejected(DeliveryError):
    """The receiver's final answer is a refusal (nhs-standards.md 1.7: an HTTP error with an OperationOutcome).

    ``outcome`` is the receiver's OperationOutcome (None when the refusal carried none), ``headers`` the
    response headers (lower-case names).
    """

    def __init__(
        self,
        status: int,
        outcome: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        *,
        request_id: str = "",
        attempts: int = 0,
    ) -> None:
        self.status = status
        self.outcome = dict(outcome) if outcome is not None else None
        self.headers = dict(headers)
        detail = _outcome_text(outcome) or "no OperationOutcome"
        super().__init__(
            f"the receiver refused the message: HTTP {status}: {detail}", request_id=request_id, attempts=attempts
        )


class ReceiverUnavailable(DeliveryError):
    """Not delivered for now: the receiver or the network failed on every attempt (nhs-standards.md 1.2).

    ``status`` is the last HTTP status (None after a connection failure), ``reason`` says what happened last,
    ``retry_after`` the seconds the receiver asked to wait (None if it did not say), ``outcome`` its
    OperationOutcome if it sent one.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        outcome: Mapping[str, Any] | None = None,
        request_id: str = "",
        attempts: int = 0,
    ) -> None:
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.outcome = dict(outcome) if outcome is not None else None
        super().__init__(
            f"the receiver is unavailable after {attempts} attempt(s): {reason}",
            request_id=request_id,
            attempts=attempts,
        )


class AuthError(DeliveryError):
    """The OAuth2 token endpoint did not issue an access token (nhs-standards.md 6.1).

    ``status`` is its HTTP status (None when it could not be reached), ``error`` and ``description`` its
    OAuth2 ``error`` / ``error_description`` (RFC 6749 5.2).
    """

    def __init__(self, message: str, *, status: int | None = None, error: str = "", description: str = "") -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """Unreachable, or an answer that may change (408, 429, 5xx); a refusal (400, 401) will not."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


class MeshError(EscapeFhirError):
    """A MESH request that failed (nhs-standards.md 6.3): refused by MESH (``status`` is the HTTP status when
    mesh-client reports it) or MESH could not be reached (``reached`` false)."""

    def __init__(self, message: str, *, status: int | None = None, reached: bool = True) -> None:
        self.status = status
        self.reached = reached
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """Unreachable, or an answer that may change (408, 429, 5xx); a refusal (403, 417) will not."""
        return not self.reached or self.status in (408, 429) or (self.status or 0) >= 500
