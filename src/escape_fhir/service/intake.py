"""``$process-message``: receive a BaRS referral message exactly once (FHIR messaging.html; BaRS 1.2, 1.7).

Order of checks: the message's shape; a repeated ``X-Request-ID`` -> 409 ``duplicate`` (changes nothing);
a Bundle id already processed -> its original response again (not processed twice); the validator's
errors -> 400 with its issues; a Bundle that cannot be mapped to a referral -> 422 with located issues.
Then, in one transaction, the request and message are logged and the referral stored; the caller answers
200 only after the commit.

Two deliveries of one message at the same moment (two server processes on one PostgreSQL database): both
insert the message row; the unique key makes the second wait for the first and then fail, and the second
answers with the first one's stored response.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from escape_fhir.domain import Outcome, assess
from escape_fhir.errors import Issue, MappingError
from escape_fhir.fhir.readers import read_referral
from escape_fhir.service import responses, shapes
from escape_fhir.service.common import now, referral_reference
from escape_fhir.service.messages import Message, read_message, retired_verification_codes
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.referrals import acknowledgement, find_referral, store_new, store_update, withdraw
from escape_fhir.service.triage import Assessment
from escape_fhir.storage import Database, MessageRecord, Repository, instant
from escape_fhir.validation.api import Validator

Json = dict[str, Any]
log = logging.getLogger("escape_fhir.intake")


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery of a message: its ids (BaRS headers) and its bytes as received (kept for audit)."""

    request_id: str
    correlation_id: str
    original: bytes
    fmt: str
    base: str
    #: Our own BaRS endpoints (``system|value``); empty: a message may be addressed to anyone.
    own_endpoints: frozenset[str] = frozenset()


@dataclass
class Result:
    body: Json
    replayed: bool = False
    referral: str | None = None
    warnings: list[Issue] = field(default_factory=list)
    #: ``body`` as JSON bytes when it was written already (stored for replay): sent as it is.
    data: bytes | None = None


def _duplicate_request(request_id: str) -> OutcomeError:
    text = f"X-Request-ID {request_id} has already been received; the message is not processed again"
    return OutcomeError(Problem.CONFLICT, [Issue("error", "duplicate", text, "X-Request-ID")])


def checked(bundle: Json, validator: Validator) -> tuple[Message, list[Issue]]:
    """The message, or OutcomeError; the warnings to return with a 200 (validator's and reader's)."""
    message = read_message(bundle)
    return message, validated(bundle, validator)


def validated(bundle: Json, validator: Validator) -> list[Issue]:
    """The validator's warnings, or OutcomeError 400 with its errors (and warnings).

    Retired NHS number verification codes are accepted (nhs-standards.md 1.8): the validator's complaints
    about them become warnings, never a reason to refuse.
    """
    entries = bundle.get("entry")
    retired = retired_verification_codes(entries if isinstance(entries, list) else [])
    prefixes = tuple(i.location for i in retired)
    errors, warnings = [], list(retired)
    # Only errors count here; the validator's own warnings are for $validate, not for every acknowledgement.
    for issue in validator.validate(bundle).errors:
        if prefixes and issue.location.startswith(prefixes):
            warnings.append(Issue("warning", issue.code, issue.message, issue.location))
        else:
            errors.append(issue)
    if errors:
        raise OutcomeError(Problem.BAD_REQUEST, errors)
    return warnings


def assessment_of(message: Message, warnings: list[Issue]) -> Assessment | None:
    """Eligibility and STarT Back risk of the referral; None for a withdrawal (it carries no referral)."""
    return None if message.withdraws else assess_bundle(message.bundle, warnings)


def assess_bundle(bundle: Json, warnings: list[Issue]) -> Assessment:
    """Map the Bundle to a referral (422 with located issues if it cannot be) and assess it."""
    try:
        read = read_referral(bundle)
    except MappingError as exc:
        raise OutcomeError(Problem.UNPROCESSABLE, exc.issues) from None
    known = {i.location for i in warnings}
    warnings += [w for w in read.warnings if not w.location.startswith(tuple(known) or ("\0",))]
    result = assess(read.referral)
    open_points = [f"{c.title}: {c.reason}" for c in result.criteria if c.outcome is not Outcome.MET]
    summary = "; ".join(open_points) if open_points else "every criterion met"
    start_back = read.referral.effective_start_back()
    return Assessment(result.decision.value, summary, start_back.risk if start_back else None)


def process_message(db: Database, bundle: Json, delivery: Delivery, validator: Validator) -> Result:
    shapes.check_bundle(bundle)
    if responses.is_response(bundle):
        return _process_response(db, bundle, delivery, validator)
    message, warnings = checked(bundle, validator)
    check_destination(message, delivery.own_endpoints)
    if (earlier := _earlier_answer(db, message, delivery)) is not None:
        return earlier
    assessment = assessment_of(message, warnings)
    try:
        return _store(db, message, assessment, warnings, delivery)
    except IntegrityError:
        # Lost a race with a simultaneous delivery: answer as if it had come second (module docstring).
        log.info("message %s delivered concurrently; answering from the log", message.bundle_id)
        return _after_race(db, message, assessment, warnings, delivery)


def _store(
    db: Database, message: Message, assessment: Assessment | None, warnings: list[Issue], delivery: Delivery
) -> Result:
    moment = now()
    with db.write() as repo:
        repo.record_request(delivery.request_id, message.bundle_id, moment)
        record = MessageRecord(
            message.bundle_id, delivery.request_id, delivery.correlation_id, message.reason, None, {}
        )
        repo.claim_message(record, moment, delivery.original, delivery.fmt)
        number, stored = _apply(repo, message, assessment, moment)
        responses.remember_origin(repo, message, delivery.correlation_id, number)
        body = acknowledgement(message, stored, warnings, delivery.base, instant(moment))
        data = repo.finish_message(message.bundle_id, number, body)
    return Result(body, referral=referral_reference(number), warnings=warnings, data=data)


def _apply(
    repo: Repository, message: Message, assessment: Assessment | None, moment: datetime
) -> tuple[int, dict[int, Json]]:
    if message.reason == "new" and assessment is not None:
        return store_new(repo, message, assessment, moment)
    record = find_referral(repo, message)
    if assessment is None:
        return record.number, withdraw(repo, message, record, moment)
    return record.number, store_update(repo, message, record, assessment, moment)


def _process_response(db: Database, bundle: Json, delivery: Delivery, validator: Validator) -> Result:
    """An asynchronous response to a referral we sent (nhs-standards.md 1.7), logged and deduplicated like a
    request: a repeated X-Request-ID is 409, a Bundle id already taken gets its first answer."""
    response = responses.read_response(bundle)
    warnings = validated(bundle, validator)
    with db.read() as repo:
        if repo.request_seen(delivery.request_id):
            raise _duplicate_request(delivery.request_id)
        if repo.message(response.bundle_id) is not None:
            return _replay(db, response.bundle_id, delivery)
    moment = now()
    record = MessageRecord(response.bundle_id, delivery.request_id, delivery.correlation_id, "response", None, {})
    try:
        with db.write() as repo:
            repo.record_request(delivery.request_id, response.bundle_id, moment)
            repo.claim_message(record, moment, delivery.original, delivery.fmt)
            body = responses.apply_response(repo, response, moment)
            repo.finish_message(response.bundle_id, None, body)
    except IntegrityError:
        return _replay(db, response.bundle_id, delivery)
    return Result(body, warnings=warnings)


def _replay(db: Database, bundle_id: str, delivery: Delivery) -> Result:
    """The original response to a message already processed; the new request id is logged too."""
    try:
        with db.write() as repo:
            repo.record_request(delivery.request_id, bundle_id, now())
            original = repo.message(bundle_id)
    except IntegrityError:
        raise _duplicate_request(delivery.request_id) from None
    assert original is not None
    number = original.referral_number
    return Result(original.response, replayed=True, referral=referral_reference(number) if number else None)


def check_destination(message: Message, own: frozenset[str]) -> None:
    """BaRS receiver step 1 (nhs-standards.md 1.4): the message must be addressed to one of our endpoints."""
    if not own:
        return
    header = message.resource(0)
    named = [str(d.get("endpoint", "")) for d in header.get("destination") or [] if isinstance(d, dict)]
    if own.isdisjoint(named):
        text = f"this message is addressed to {', '.join(named) or 'no destination'}, not to this service"
        location = "Bundle.entry[0].resource.destination"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "not-supported", text, location)])


def _earlier_answer(db: Database, message: Message, delivery: Delivery) -> Result | None:
    """409 for a repeated X-Request-ID; the stored answer for a Bundle id already processed; else None."""
    with db.read() as repo:
        seen, processed = repo.logged(delivery.request_id, message.bundle_id)
    if seen:
        raise _duplicate_request(delivery.request_id)
    return _replay(db, message.bundle_id, delivery) if processed else None


def _after_race(
    db: Database, message: Message, assessment: Assessment | None, warnings: list[Issue], delivery: Delivery
) -> Result:
    if (earlier := _earlier_answer(db, message, delivery)) is not None:
        return earlier
    # Another message created the same referral first: storing again now answers 409 (store_new).
    return _store(db, message, assessment, warnings, delivery)
