"""The message rules (issue 9) as they apply to ``POST /`` transactions (:mod:`escape_fhir.service.transaction`).

A transaction has no Bundle id or X-Request-ID that makes it one message, so only the referral rules apply:

* a ``POST`` (create) of a ServiceRequest whose identifier is a referral already held is refused, 422
  ``business-rule``: a second referral of the same request would be a duplicate for triage, and a correction
  sent that way would sit beside the first unseen. The text names the held referral and says to send an
  update message;
* a held referral's ServiceRequest is not changed by transaction at all (:mod:`escape_fhir.service.permissions`):
  an update goes through ``$process-message``, which assesses it again and revises the Task.
"""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.service.common import referral_reference
from escape_fhir.service.messages import sender_identifier
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.storage import Repository

Json = dict[str, Any]


def identifier_of_new(repo: Repository, sr: Json, where: str) -> str | None:
    """The sender identifier a created ServiceRequest registers; 422 when a referral holds it already."""
    identifier = sender_identifier(sr)
    if identifier and (held := repo.referral(sender_identifier=identifier)) is not None:
        reference = referral_reference(held.number)
        text = (
            f"referral {identifier} is already held here as {reference} (ServiceRequest/{held.service_request_id}); "
            "the transaction is not processed. Send the changes as an update: a message to $process-message "
            "with MessageHeader reason update (a referral's ServiceRequest is not changed by transaction)"
        )
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, where)])
    return identifier
