"""Small things every service uses: the clock, the resource types served, references."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from escape_fhir.fhir import codes

Json = dict[str, Any]

#: Resource types with read, version read and history (the parts of a referral and the triage Task).
READ_TYPES: tuple[str, ...] = (
    "ServiceRequest",
    "Task",
    "QuestionnaireResponse",
    "Observation",
    "Patient",
    "Encounter",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "HealthcareService",
    "Condition",
    "CarePlan",
    "Consent",
    "Location",
    "Flag",
    "Endpoint",  # of the site directory (escape_fhir.sites)
    "CommunicationRequest",  # the hub's "to contact" list (escape_fhir.sites.hub)
)
#: Resource types read, version read and history serve: the referral's, and the Subscriptions clients make
#: (``POST /Subscription``; not through messages or transactions).
SERVED_TYPES: tuple[str, ...] = (*READ_TYPES, "Subscription")
#: Where our referral reference lives: ``Encounter.identifier`` of the planned Encounter (nhs-standards.md 1.7)
#: and ``Task.identifier`` of the triage Task.
ID_REFERRAL_REFERENCE = f"{codes.BASE}/Id/referral-reference"


def now() -> datetime:
    """The current UTC time to the millisecond, naive (as stored), so ``meta.lastUpdated`` and the row agree."""
    moment = datetime.now(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


def referral_reference(number: int) -> str:
    """The human-readable referral reference shown to the sender (BaRS "receiver's business identifier")."""
    return f"ESCAPE-{number:06d}"


def ref(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


def rewrite_references(node: Any, resolve: Callable[[str], str | None]) -> Any:
    """A copy of ``node`` with every ``reference`` that ``resolve`` knows replaced (urn:uuid -> ``Type/id``)."""
    if isinstance(node, dict):
        out = {k: rewrite_references(v, resolve) for k, v in node.items()}
        target = node.get("reference")
        if isinstance(target, str) and (found := resolve(target)) is not None:
            out["reference"] = found
        return out
    if isinstance(node, list):
        return [rewrite_references(v, resolve) for v in node]
    return node
