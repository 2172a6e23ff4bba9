"""Referrals we send: our record of each one and its message in the outbox, in one transaction.

``enqueue_referral`` keeps our copy of the message's ServiceRequest (a resource of our store, readable at
``GET /ServiceRequest/{id}``) and queues the message; nothing is sent yet (the outbox runner sends it). The
receiver's asynchronous responses later update that copy and the outbox row (:mod:`escape_fhir.service.responses`).
Updates of a referral keep its X-Correlation-ID (nhs-standards.md 1.2: the conversation's id is kept across
updates, each message gets a new X-Request-ID).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from escape_fhir.errors import InputError
from escape_fhir.fhir.formats import parse, sniff
from escape_fhir.service.common import new_id, now
from escape_fhir.service.messages import read_message
from escape_fhir.service.outcomes import OutcomeError
from escape_fhir.storage import Database
from escape_fhir.storage.outbox import REQUEST, NewMessage, Outbox


class NotQueued(InputError):
    """A message that cannot be queued (not a referral message, or already queued)."""


@dataclass(frozen=True)
class Queued:
    id: int
    bundle_id: str
    request_id: str
    correlation_id: str
    service_request_id: str


def enqueue_referral(db: Database, data: bytes, destination: str, correlation_id: str | None = None) -> Queued:
    """Record a referral message we send (our ServiceRequest copy) and queue it for ``destination``."""
    fmt = sniff(data) or "json"
    try:
        message = read_message(parse(data, fmt))
    except OutcomeError as exc:
        raise NotQueued("; ".join(f"{i.location}: {i.message}" for i in exc.issues)) from None
    sr = message.service_request
    sr_id = sr["id"] if isinstance(sr.get("id"), str) else new_id()
    moment = now()
    try:
        with db.write() as repo:
            outbox = Outbox(repo.session)
            conversation = correlation_id or outbox.correlation_of(sr_id) or new_id()
            repo.save({**sr, "id": sr_id}, moment)
            row = NewMessage(REQUEST, destination, message.bundle_id, new_id(), conversation, data, fmt, sr_id)
            queued = Queued(outbox.add(row, moment), message.bundle_id, row.request_id, conversation, sr_id)
    except IntegrityError:
        raise NotQueued(f"message {message.bundle_id} is already in the outbox") from None
    return queued
