"""Who may do what: the one authority every route asks before it reads or changes anything.

Issue 10 item 1: a ``submit`` token could once, through a ``POST /`` transaction, delete a referral's
ServiceRequest or move its Task to ``rejected`` without ``If-Match``, while ``PUT /Task`` refused the same
token. Now every route (``$process-message``, ``POST /`` entries, ``PUT /Task``, reads, ``$validate``) states
its action and resource type, and this module answers from one table:

* the **scope** the action needs (403 without it; RFC 6750 section 3.1 ``insufficient_scope``);
* whether anyone may do it at all (``scope`` None: 422, a business rule of this server, FHIR http.html
  "422 Unprocessable Entity ... server business rules"), e.g. a Task is only ever made by the server;
* the **state rule** for a resource that belongs to a held referral: its ServiceRequest and planned
  Encounter change only by a message (reason ``update``/``delete``, BaRS nhs-standards.md 1.7) or by
  triage, never behind them (422); a Patient with referrals cannot be deleted;
* whether the change goes through the **triage state machine** (``triage.apply_change``), which requires
  the version precondition (``If-Match`` / ``Bundle.entry.request.ifMatch``, FHIR http.html#concurrency).

The rules are data (:data:`RULES`): a new route or resource type is a row, not a new branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.service.common import ID_REFERRAL_REFERENCE, ref
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.settings import Scope
from escape_fhir.storage import Repository, TokenFilter

#: What an open server (no tokens configured, loopback only) lets every caller do.
EVERY_SCOPE: frozenset[Scope] = frozenset(Scope)


class Action(StrEnum):
    READ = "read"  # read, vread, history, search; GET entries of a transaction
    VALIDATE = "validate"  # $validate
    MESSAGE = "message"  # $process-message: a referral (new, update, delete) or a response to ours
    CREATE = "create"  # POST entries (conditional create included); PUT of an id not held
    UPDATE = "update"  # PUT entries (conditional update included); PUT /Task/{id}
    DELETE = "delete"  # DELETE entries


@dataclass(frozen=True)
class Rule:
    #: The scope the action needs; None: no caller may do it (``refusal`` says why and what to do instead).
    scope: Scope | None
    refusal: str = ""
    #: Refusal when the target belongs to a held referral (see :data:`HELD_BY`); empty: no state rule.
    held: str = ""
    #: The change goes through the triage state machine, its version precondition required.
    triage: bool = False
    #: The change goes through the hub's "to contact" list (``sites.hub.update_contact``), If-Match required.
    contact: bool = False


ANY = "*"
_BY_MESSAGE = "send a message with reason update or delete ($process-message) instead"

#: (action, resource type) -> rule; ``*`` is every other type. Order of lookup: the type's row, then ``*``.
RULES: dict[tuple[Action, str], Rule] = {
    (Action.READ, ANY): Rule(Scope.READ),
    (Action.VALIDATE, ANY): Rule(Scope.VALIDATE),
    (Action.MESSAGE, ANY): Rule(Scope.SUBMIT),
    (Action.CREATE, "Task"): Rule(None, "a Task is made by this server, one for each referral it receives"),
    (Action.UPDATE, "Task"): Rule(Scope.TRIAGE, triage=True),
    (Action.DELETE, "Task"): Rule(
        None, "a Task is never deleted: triage ends it (rejected, completed), a sender's withdrawal cancels it"
    ),
    (Action.UPDATE, "ServiceRequest"): Rule(
        Scope.SUBMIT, held=f"the ServiceRequest of referral {{}} is under triage; {_BY_MESSAGE}"
    ),
    (Action.DELETE, "ServiceRequest"): Rule(
        Scope.SUBMIT, held=f"the ServiceRequest of referral {{}} is under triage; {_BY_MESSAGE}"
    ),
    (Action.UPDATE, "Encounter"): Rule(Scope.SUBMIT, held="the planned Encounter of referral {} is this server's"),
    (Action.DELETE, "Encounter"): Rule(Scope.SUBMIT, held="the planned Encounter of referral {} is this server's"),
    (Action.DELETE, "Patient"): Rule(Scope.SUBMIT, held="the Patient has referrals ({}); it cannot be deleted"),
    # A Subscription is the triage system's (it is told of referrals and Tasks); a sender's submit token may not
    # make the server call out.
    (Action.CREATE, "Subscription"): Rule(Scope.TRIAGE),
    (Action.UPDATE, "Subscription"): Rule(Scope.TRIAGE),
    (Action.DELETE, "Subscription"): Rule(Scope.TRIAGE),
    # The hub's "to contact" list: made by routing, marked done or revoked by triage, never deleted. (Creating
    # one is not refused: a sender's message may carry its own, which is stored and is not on the list.)
    (Action.UPDATE, "CommunicationRequest"): Rule(Scope.TRIAGE, contact=True),
    (Action.DELETE, "CommunicationRequest"): Rule(
        None, "an entry of the to-contact list is never deleted: mark it completed or revoked (PUT with If-Match)"
    ),
    (Action.CREATE, ANY): Rule(Scope.SUBMIT),
    (Action.UPDATE, ANY): Rule(Scope.SUBMIT),
    (Action.DELETE, ANY): Rule(Scope.SUBMIT),
}


def rule(action: Action, resource_type: str) -> Rule:
    return RULES.get((action, resource_type)) or RULES[(action, ANY)]


def allow(scopes: frozenset[Scope], action: Action, resource_type: str, where: str = "") -> Rule:
    """The rule of ``action`` on ``resource_type`` if ``scopes`` permit it; OutcomeError 403 (scope missing)
    or 422 (nobody may) otherwise. The state rule is :func:`check_state`'s, once the target is known."""
    found = rule(action, resource_type)
    what = f"{action.value} {resource_type}" if resource_type != ANY else action.value
    if found.scope is None:
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", found.refusal, where)])
    if found.scope not in scopes:
        text = f"the bearer token lacks the {found.scope.value} scope ({what} needs it)"
        raise OutcomeError(Problem.FORBIDDEN, [Issue("error", "forbidden", text, where)])
    return found


def check_carried(entries: Sequence[Any]) -> None:
    """A message stores what it carries (as creates or updates of the sender's resources): what no caller may
    create, a Task above all, is refused (422) there too, not stored beside the referral's own."""
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(kind, str) and (found := rule(Action.CREATE, kind)).scope is None:
            where = f"Bundle.entry[{i}].resource"
            raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", found.refusal, where)])


def check_mirror(repo: Repository, task_id: str, focus: str, where: str) -> None:
    """A response to a referral we sent carries the receiver's Task, kept as a mirror focused on our copy of
    the ServiceRequest (``service.responses``). It may replace that mirror, never another Task: a response
    naming the id of one of our triage Tasks would otherwise rewrite a triage decision (422)."""
    held = repo.current("Task", task_id)
    if held is not None and (held.content.get("focus") or {}).get("reference") != focus:
        text = f"Task/{task_id} is not the receiver's Task of the referral this response answers"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, where)])


# --- the state rule: does the target belong to a held referral? ------------------------------------------
def _service_request_referral(repo: Repository, resource_id: str) -> str | None:
    record = repo.referral(service_request_id=resource_id)
    return f"ESCAPE-{record.number:06d}" if record else None


def _encounter_referral(repo: Repository, resource_id: str) -> str | None:
    current = repo.current("Encounter", resource_id)
    for identifier in (current.content.get("identifier") or []) if current and not current.deleted else []:
        if isinstance(identifier, dict) and identifier.get("system") == ID_REFERRAL_REFERENCE:
            return str(identifier.get("value"))
    return None


def _patient_referrals(repo: Repository, resource_id: str) -> str | None:
    patient = ((None, ref("Patient", resource_id)),)
    found, total = repo.search("ServiceRequest", [TokenFilter("patient", patient)], count=1)
    return f"{total} ServiceRequest(s), e.g. ServiceRequest/{found[0].resource_id}" if total else None


#: Resource type -> how to tell which held referral a resource belongs to (None: it belongs to none).
HELD_BY = {
    "ServiceRequest": _service_request_referral,
    "Encounter": _encounter_referral,
    "Patient": _patient_referrals,
}


def check_state(repo: Repository, found: Rule, resource_type: str, resource_id: str, where: str) -> None:
    """OutcomeError 422 when ``found`` forbids changing ``resource_type/resource_id`` in its current state."""
    probe = HELD_BY.get(resource_type)
    if not found.held or probe is None:
        return
    holder = probe(repo, resource_id)
    if holder is not None:
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", found.held.format(holder), where)])
