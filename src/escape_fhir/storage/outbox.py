"""The outbox and the origin of received referrals, over one session (the caller's transaction).

A message is added in the transaction of the change that caused it (the transactional outbox pattern), so a
committed change always has its message and a rolled-back one never does. Runners *claim* due messages:
``state`` becomes ``sending`` with a lease (``lease_until``) and the runner's id; the claim is one write
transaction (PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` so two runners never take the same row;
SQLite serialises writers with ``BEGIN IMMEDIATE``) and every claim and result is a conditional UPDATE, so a
runner whose lease has passed cannot overwrite the work of the runner that took the message over. A runner
killed mid-delivery leaves a lease that expires; the next claim takes the message again and it is resent
with the same X-Request-ID, which the receiver answers with 409 ``duplicate`` or its stored answer
(nhs-standards.md 1.2; FHIR messaging.html "Reliable delivery"): at-least-once sending to an idempotent
receiver delivers exactly once.

Messages of one conversation (the same X-Correlation-ID) to one destination go in the order they were
queued: a message is not claimed while an earlier one of its conversation to the same destination is still
pending or being sent (:func:`_first_in_line`). So a referral's update or cancellation never overtakes the
referral itself when that one is waiting for a retry; a dead message no longer holds the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from escape_fhir.outbox_states import DEAD, DELIVERED, PENDING, SENDING, STATES  # noqa: F401
from escape_fhir.storage import tables as t

#: What a message carries: a referral we send, or an asynchronous response to a referral we received (a
#: Subscription notification is ``notification``: escape_fhir.service.subscriptions).
REQUEST, RESPONSE = "request", "response"


@dataclass(frozen=True)
class NewMessage:
    kind: str
    destination: str
    bundle_id: str
    request_id: str
    correlation_id: str
    body: bytes
    body_format: str
    service_request_id: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True)
class OutboxMessage:
    """One row of the outbox; ``body`` is empty in listings (only a claim reads it)."""

    id: int
    kind: str
    destination: str
    bundle_id: str
    request_id: str
    correlation_id: str
    body_format: str
    state: str
    attempts: int
    next_attempt: datetime
    lease_until: datetime | None
    claimed_by: str | None
    last_status: int | None
    last_error: str | None
    created: datetime
    updated: datetime
    delivered: datetime | None
    service_request_id: str | None
    receiver_reference: str | None
    reply_status: str | None
    reply_at: datetime | None
    subscription_id: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class Origin:
    """Where the responses to a received referral go (nhs-standards.md 1.4, 1.7)."""

    referral_number: int
    bundle_id: str
    correlation_id: str
    source_endpoint: str
    own_endpoint: str | None


_o = t.outbox
_LISTED = [c for c in _o.c if c.name != "body"]


def _row(row: Any) -> OutboxMessage:
    values = {c.name: getattr(row, c.name) for c in _LISTED}
    return OutboxMessage(**values, body=getattr(row, "body", b"") or b"")


def _due(now: datetime) -> Any:
    """Pending and due, or claimed by a runner whose lease has passed (killed or stuck)."""
    return or_(
        and_(_o.c.state == PENDING, _o.c.next_attempt <= now),
        and_(_o.c.state == SENDING, _o.c.lease_until <= now),
    )


_earlier = _o.alias("earlier")


def _first_in_line() -> Any:
    """No earlier message of the same conversation to the same destination is still to be sent (module doc)."""
    return ~exists().where(
        _earlier.c.destination == _o.c.destination,
        _earlier.c.correlation_id == _o.c.correlation_id,
        _earlier.c.id < _o.c.id,
        _earlier.c.state.in_((PENDING, SENDING)),
    )


def _changed(result: Any) -> int:
    """Rows an UPDATE changed (``execute`` of an UPDATE returns a CursorResult)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


class Outbox:
    """Queries on the outbox and on referral origins, in the session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- adding and reading -------------------------------------------------------------------------
    def add(self, message: NewMessage, now: datetime) -> int:
        """Queue a message; a Bundle id or X-Request-ID already queued fails (IntegrityError)."""
        values = {**asdict(message), "state": PENDING, "attempts": 0, "next_attempt": now}
        result = self.session.execute(
            insert(_o).values(**values, created=now, updated=now).returning(_o.c.id),
        )
        return int(result.scalar_one())

    def get(self, message_id: int, *, with_body: bool = False) -> OutboxMessage | None:
        columns = list(_o.c) if with_body else _LISTED
        row = self.session.execute(select(*columns).where(_o.c.id == message_id)).one_or_none()
        return _row(row) if row else None

    def by_bundle(self, bundle_id: str) -> OutboxMessage | None:
        row = self.session.execute(select(*_LISTED).where(_o.c.bundle_id == bundle_id)).one_or_none()
        return _row(row) if row else None

    def listing(self, states: Sequence[str] = (), kind: str | None = None) -> list[OutboxMessage]:
        query = select(*_LISTED).order_by(_o.c.id)
        if states:
            query = query.where(_o.c.state.in_(states))
        if kind:
            query = query.where(_o.c.kind == kind)
        return [_row(r) for r in self.session.execute(query)]

    def correlation_of(self, service_request_id: str) -> str | None:
        """The X-Correlation-ID of the first message we queued about a ServiceRequest (None: none yet)."""
        query = select(_o.c.correlation_id).where(_o.c.service_request_id == service_request_id)
        return self.session.execute(query.order_by(_o.c.id).limit(1)).scalar_one_or_none()

    def counts(self) -> dict[str, int]:
        rows = self.session.execute(select(_o.c.state, func.count()).group_by(_o.c.state))
        return {state: int(n) for state, n in rows}

    def next_due(self) -> datetime | None:
        """When the earliest pending message or lease falls due (the runner sleeps until then)."""
        pending = select(func.min(_o.c.next_attempt)).where(_o.c.state == PENDING, _first_in_line())
        leased = select(func.min(_o.c.lease_until)).where(_o.c.state == SENDING)
        found = [self.session.execute(q).scalar_one_or_none() for q in (pending, leased)]
        times = [f for f in found if f is not None]
        return min(times) if times else None

    # --- claiming and results -----------------------------------------------------------------------
    def claim(self, runner: str, now: datetime, lease: timedelta, limit: int) -> list[OutboxMessage]:
        """Take up to ``limit`` due messages for ``runner`` until ``now + lease``; each claim is an attempt."""
        query = select(_o.c.id).where(_due(now), _first_in_line()).order_by(_o.c.next_attempt, _o.c.id).limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = []
        for message_id in self.session.execute(query).scalars().all():
            taken = self.session.execute(
                update(_o)
                .where(_o.c.id == message_id, _due(now))
                .values(
                    state=SENDING, claimed_by=runner, lease_until=now + lease, attempts=_o.c.attempts + 1, updated=now
                )
            )
            if _changed(taken) == 1:
                claimed.append(message_id)
        found = [self.get(i, with_body=True) for i in claimed]
        return [m for m in found if m is not None]

    def _finish(self, message_id: int, runner: str, **values: Any) -> bool:
        """Record a result only while ``runner`` still holds the message (its lease not taken over)."""
        done = self.session.execute(
            update(_o)
            .where(_o.c.id == message_id, _o.c.state == SENDING, _o.c.claimed_by == runner)
            .values(lease_until=None, **values)
        )
        return _changed(done) == 1

    def delivered(
        self, message_id: int, runner: str, now: datetime, status: int, receiver_reference: str | None = None
    ) -> bool:
        return self._finish(
            message_id,
            runner,
            state=DELIVERED,
            delivered=now,
            updated=now,
            last_status=status,
            last_error=None,
            receiver_reference=receiver_reference,
        )

    def failed(
        self, message_id: int, runner: str, now: datetime, *, status: int | None, error: str, retry_at: datetime | None
    ) -> bool:
        """An attempt that failed: pending again from ``retry_at``, or dead when ``retry_at`` is None."""
        state = DEAD if retry_at is None else PENDING
        return self._finish(
            message_id,
            runner,
            state=state,
            next_attempt=retry_at or now,
            updated=now,
            last_status=status,
            last_error=error[:2000],
        )

    def withdraw(self, message_id: int, now: datetime, reason: str) -> bool:
        """Stop a message not yet sent: a pending one becomes dead with ``reason`` (False when it is being
        sent or was delivered: too late). The hub's re-route (escape_fhir.sites.hub) uses it."""
        done = self.session.execute(
            update(_o)
            .where(_o.c.id == message_id, _o.c.state == PENDING)
            .values(state=DEAD, last_error=reason, updated=now)
        )
        return _changed(done) == 1

    def retry(self, now: datetime, ids: Iterable[int] = (), *, dead: bool = False) -> int:
        """Queue dead (or pending) messages again with a fresh count of attempts; delivered ones stay."""
        wanted = list(ids)
        where: list[Any] = [_o.c.state.in_((DEAD, PENDING))]
        if wanted:
            where.append(_o.c.id.in_(wanted))
        elif dead:
            where = [_o.c.state == DEAD]
        else:
            return 0
        done = self.session.execute(
            update(_o).where(*where).values(state=PENDING, attempts=0, next_attempt=now, claimed_by=None, updated=now)
        )
        return _changed(done)

    def record_reply(self, message_id: int, status: str, now: datetime) -> None:
        self.session.execute(update(_o).where(_o.c.id == message_id).values(reply_status=status, reply_at=now))

    # --- origins of received referrals --------------------------------------------------------------
    def add_origin(self, origin: Origin) -> None:
        self.session.execute(insert(t.referral_origin).values(**asdict(origin)))

    def origin(self, referral_number: int) -> Origin | None:
        r = t.referral_origin
        row = self.session.execute(select(*r.c).where(r.c.referral_number == referral_number)).one_or_none()
        return Origin(*row) if row else None

    def origin_of_task(self, task_id: str) -> Origin | None:
        """The origin of the referral whose triage Task is ``task_id`` (None: not received as a message)."""
        r, o = t.referral, t.referral_origin
        query = select(*o.c).join(r, r.c.number == o.c.referral_number).where(r.c.task_id == task_id)
        row = self.session.execute(query).one_or_none()
        return Origin(*row) if row else None
