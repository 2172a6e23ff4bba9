"""The message rules (issue 9) as they apply to ``POST /`` transactions (:mod:`escape_fhir.service.transaction`).

A transaction has no Bundle id or X-Request-ID that makes it one message, so only the referral rules apply:

* a ``POST`` (create) of a ServiceRequest whose identifier is a referral already held is refused, 422
  ``business-rule``: a second referral of the same request would be a duplicate for triage, and a correction
  sent that way would sit beside the first unseen. The text names the held referral and says to ``PUT`` it;
* a ``PUT`` of a held referral's ServiceRequest is an update: the referral is assessed again from the
  transaction's entries and the Task revised as for a message ``update``
  (:func:`escape_fhir.service.triage.revise_task`). When the transaction does not carry the whole referral
  (only the ServiceRequest, say), it cannot be assessed: the Task says so in a note, and an accepted Task goes
  back to ``requested``, since what was accepted is not what is held now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.service.common import referral_reference
from escape_fhir.service.messages import sender_identifier
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.triage import Assessment, note_not_assessed, revise_task
from escape_fhir.storage import Repository, Stored, instant

Json = dict[str, Any]


def identifier_of_new(repo: Repository, sr: Json, where: str) -> str | None:
    """The sender identifier a created ServiceRequest registers; 422 when a referral holds it already."""
    identifier = sender_identifier(sr)
    if identifier and (held := repo.referral(sender_identifier=identifier)) is not None:
        reference = referral_reference(held.number)
        text = (
            f"referral {identifier} is already held here as {reference} (ServiceRequest/{held.service_request_id}); "
            f"the transaction is not processed. Send the changes as an update: PUT ServiceRequest/"
            f"{held.service_request_id}, with the rest of the referral"
        )
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, where)])
    return identifier


def reassess_updated(
    repo: Repository, updated: Sequence[Stored], assess: Callable[[], Assessment], now: datetime
) -> None:
    """Revise the Task of every held referral whose ServiceRequest the transaction replaced (module docstring)."""
    referrals = [
        repo.referral(service_request_id=s.resource_id) for s in updated if s.resource_type == "ServiceRequest"
    ]
    held = [r for r in referrals if r is not None]
    if not held:
        return
    assessment: Assessment | None = None
    why = ""
    try:
        assessment = assess()
    except OutcomeError as exc:  # e.g. only the ServiceRequest was sent: nothing to assess it with
        why = "a transaction replaced its ServiceRequest but the referral cannot be read from it: "
        why += "; ".join(i.message for i in exc.issues)
    tasks = repo.currents([("Task", r.task_id) for r in held], lock=True)
    stamp = instant(now)
    revised = [
        revise_task(task.content, assessment, stamp) if assessment else note_not_assessed(task.content, why, stamp)
        for task in tasks.values()
    ]
    repo.save_all(revised, now)
