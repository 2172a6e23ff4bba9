"""``$process-message``: receive a BaRS referral message exactly once (FHIR messaging.html; BaRS 1.2, 1.7).

Order of checks: the message's shape; the validator's errors -> 400 with its issues; a repeated
``X-Request-ID`` of the same message (Bundle id and content) -> 409 ``duplicate`` (changes nothing), of
another message -> 422 ``conflict``; a Bundle id already processed -> its original response again when
the content is the same (a retry, not processed twice: compared by the canonical content
hash of :mod:`escape_fhir.fhir.canonical`, so a JSON and an XML delivery of one message are the same), else
422 ``conflict`` naming where the content differs (a Bundle id is one message; nothing is stored); a Bundle
that cannot be mapped to a referral -> 422 with located issues; a ``new`` message for a referral already held
-> 422 ``business-rule`` asking for an ``update`` (:func:`escape_fhir.service.referrals.store_new`). Then, in
one transaction, the request and message (with its content hash) are logged and the referral stored; the
caller answers 200 only after the commit.

Only a true duplicate is answered 409 ``duplicate``: senders (BaRS sender rules, nhs-standards.md 1.2; our
client and outbox) read it as "already delivered", so a message whose content would be lost must never get it.

Two deliveries of one message at the same moment (two server processes on one PostgreSQL database): both
insert the message row; the unique key makes the second wait for the first and then fail, and the second
answers with the first one's stored response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from escape_fhir.domain import Outcome, RedFlag
from escape_fhir.errors import FhirFormatError, Issue, MappingError
from escape_fhir.fhir.canonical import content_hash, differences
from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.readers import assess_read, read_referral
from escape_fhir.service import permissions, responses, shapes
from escape_fhir.service.common import now, referral_reference
from escape_fhir.service.messages import Message, bars_version, read_message, retired_verification_codes
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.referrals import acknowledgement, find_referral, store_new, store_update, withdraw
from escape_fhir.service.triage import Assessment
from escape_fhir.sites.hub import route_new
from escape_fhir.storage import Database, LoggedMessage, MessageRecord, Repository, instant
from escape_fhir.validation.api import Validator
from escape_fhir.validation.display import is_wrong_display

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
    #: The red-flag table (the built-in one with the site's rows, ``ESCAPE_FHIR_RED_FLAGS``); None: built-in.
    red_flags: Mapping[str, RedFlag] | None = None
    #: Hub mode (``ESCAPE_FHIR_HUB``): each new referral is routed to its site (escape_fhir.sites.hub).
    hub: bool = False


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
    permissions.check_carried(message.entries)  # a Task is never the sender's to make (service.permissions)
    version = bars_version(bundle)
    return message, version + validated(bundle, validator)


def validated(bundle: Json, validator: Validator) -> list[Issue]:
    """The validator's warnings, or OutcomeError 400 with its errors (and warnings).

    Retired NHS number verification codes are accepted (nhs-standards.md 1.8): the validator's complaints
    about them become warnings, never a reason to refuse. So do wrong display labels: the code is what is read,
    and a sender's label text for a valid code is no reason to lose its referral (the warning tells them).
    """
    entries = bundle.get("entry")
    retired = retired_verification_codes(entries if isinstance(entries, list) else [])
    prefixes = tuple(i.location for i in retired)
    errors, warnings = [], list(retired)
    # Only errors count here; the validator's own warnings are for $validate, not for every acknowledgement.
    for issue in validator.validate(bundle).errors:
        if (prefixes and issue.location.startswith(prefixes)) or is_wrong_display(issue):
            warnings.append(Issue("warning", issue.code, issue.message, issue.location))
        else:
            errors.append(issue)
    if errors:
        raise OutcomeError(Problem.BAD_REQUEST, errors)
    return warnings


def assessment_of(
    message: Message, warnings: list[Issue], red_flags: Mapping[str, RedFlag] | None = None
) -> Assessment | None:
    """Eligibility and STarT Back risk of the referral; None for a withdrawal (it carries no referral)."""
    return None if message.withdraws else assess_bundle(message.bundle, warnings, red_flags)


def assess_bundle(bundle: Json, warnings: list[Issue], red_flags: Mapping[str, RedFlag] | None = None) -> Assessment:
    """Map the Bundle to a referral (422 with located issues if it cannot be) and assess it."""
    try:
        read = read_referral(bundle)
    except MappingError as exc:
        raise OutcomeError(Problem.UNPROCESSABLE, exc.issues) from None
    known = {i.location for i in warnings}
    warnings += [w for w in read.warnings if not w.location.startswith(tuple(known) or ("\0",))]
    result = assess_read(read, red_flags)
    open_points = [f"{c.title}: {c.reason}" for c in result.criteria if c.outcome is not Outcome.MET]
    summary = "; ".join(open_points) if open_points else "every criterion met"
    start_back = read.referral.effective_start_back()
    return Assessment(
        result.decision.value,
        summary,
        start_back.risk if start_back else None,
        result.criteria,
        sources=tuple(p.line() for p in read.provenance),
        not_understood=tuple(f"{w.location}: {w.message}" for w in read.warnings),
    )


def process_message(db: Database, bundle: Json, delivery: Delivery, validator: Validator) -> Result:
    shapes.check_bundle(bundle)
    if responses.is_response(bundle):
        return _process_response(db, bundle, delivery, validator)
    digest = content_hash(bundle)  # before anything reads the Bundle, as the next delivery will see it
    message, warnings = checked(bundle, validator)
    check_destination(message, delivery.own_endpoints)
    if (earlier := _earlier_answer(db, bundle, digest, delivery)) is not None:
        return earlier
    assessment = assessment_of(message, warnings, delivery.red_flags)
    try:
        return _store(db, message, digest, assessment, warnings, delivery)
    except IntegrityError:
        # Lost a race with a simultaneous delivery: answer as if it had come second (module docstring).
        log.info("message %s delivered concurrently; answering from the log", message.bundle_id)
        return _after_race(db, message, digest, assessment, warnings, delivery)


def _store(
    db: Database,
    message: Message,
    digest: str,
    assessment: Assessment | None,
    warnings: list[Issue],
    delivery: Delivery,
) -> Result:
    moment = now()
    with db.write() as repo:
        repo.record_request(delivery.request_id, message.bundle_id, moment)
        record = MessageRecord(
            message.bundle_id, delivery.request_id, delivery.correlation_id, message.reason, None, {}, digest
        )
        repo.claim_message(record, moment, delivery.original, delivery.fmt)
        number, stored = _apply(repo, message, assessment, moment)
        responses.remember_origin(repo, message, delivery.correlation_id, number)
        if delivery.hub and message.reason == "new" and assessment is not None:
            route_new(repo, message.bundle, number, delivery.correlation_id, moment)
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
    digest = content_hash(bundle)
    response = responses.read_response(bundle)
    warnings = bars_version(bundle) + validated(bundle, validator)
    if (earlier := _earlier_answer(db, bundle, digest, delivery)) is not None:
        return earlier
    moment = now()
    record = MessageRecord(
        response.bundle_id, delivery.request_id, delivery.correlation_id, "response", None, {}, digest
    )
    try:
        with db.write() as repo:
            repo.record_request(delivery.request_id, response.bundle_id, moment)
            repo.claim_message(record, moment, delivery.original, delivery.fmt)
            body = responses.apply_response(repo, response, moment)
            repo.finish_message(response.bundle_id, None, body)
    except IntegrityError:
        if (earlier := _earlier_answer(db, bundle, digest, delivery)) is not None:
            return earlier
        raise
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


def _earlier_answer(db: Database, bundle: Json, digest: str, delivery: Delivery) -> Result | None:
    """What the log says of this delivery (module docstring): 409 for a repeated X-Request-ID of the same
    message; the stored answer for a Bundle id already processed with the same content; 422 for a request
    id or a Bundle id already received with another message; else None."""
    bundle_id = str(bundle["id"])
    with db.read() as repo:
        seen, processed = repo.logged(delivery.request_id, bundle_id)
        earlier_bundle = repo.request_bundle(delivery.request_id) if seen else None
        logged = repo.logged_message(bundle_id) if processed else None
    if seen and earlier_bundle != bundle_id:
        raise _request_id_reused(delivery.request_id, earlier_bundle, bundle_id)
    if logged is not None:
        _check_same_content(bundle, digest, logged)
    if seen:
        raise _duplicate_request(delivery.request_id)
    return _replay(db, bundle_id, delivery) if logged is not None else None


def _request_id_reused(request_id: str, earlier: str | None, bundle_id: str) -> OutcomeError:
    """422: an X-Request-ID that came with another message. Not a duplicate: answered 409, the sender would
    take this message for delivered (e.g. a file corrected and sent again with the same ``--request-id``)."""
    text = (
        f"X-Request-ID {request_id} was received before with another message (Bundle id {earlier}); this message "
        f"(Bundle id {bundle_id}) is not processed. Each message needs its own X-Request-ID"
    )
    return OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "conflict", text, "X-Request-ID")])


def _check_same_content(bundle: Json, digest: str, logged: LoggedMessage) -> None:
    """Nothing when ``bundle`` is the logged message again; else OutcomeError 422 naming the differences."""
    if logged.content_hash == digest:
        return
    try:
        earlier = parse(logged.original, logged.original_format)
    except FhirFormatError:  # the log keeps only messages that were parsed; a damaged row is our failure
        raise OutcomeError(Problem.SERVER_ERROR, f"the logged message {bundle['id']} cannot be read") from None
    if logged.content_hash is None and content_hash(earlier) == digest:
        return
    raise bundle_id_reused(bundle, earlier)


#: How many differing locations a refusal names (the first ones, in document order).
MAX_DIFFERENCES = 10


def bundle_id_reused(bundle: Json, earlier: Json) -> OutcomeError:
    """422 for a message whose Bundle id was received before with other content (FHIR messaging.html:
    a Bundle id identifies one message; a changed message is a new message)."""
    where = differences(earlier, bundle, "Bundle", MAX_DIFFERENCES)
    listed = ", ".join(where) if where else "its content"
    text = (
        f"Bundle id {bundle['id']} was received before with other content (differs at {listed}); it is not "
        "processed and the earlier message stands. A changed message needs a new Bundle id; a correction of a "
        "referral already sent is a new message with MessageHeader reason update"
    )
    issues = [Issue("error", "conflict", text, "Bundle.id")]
    issues += [
        Issue("information", "informational", f"differs from the message first received as {bundle['id']}", w)
        for w in where
    ]
    return OutcomeError(Problem.UNPROCESSABLE, issues)


def _after_race(
    db: Database,
    message: Message,
    digest: str,
    assessment: Assessment | None,
    warnings: list[Issue],
    delivery: Delivery,
) -> Result:
    if (earlier := _earlier_answer(db, message.bundle, digest, delivery)) is not None:
        return earlier
    # Another message created the same referral first: storing again now answers 422 (store_new).
    return _store(db, message, digest, assessment, warnings, delivery)
