"""The outbox runner: delivers queued messages with the BaRS client, retries what may be retried, dead-letters.

Each message is claimed for a lease (see :mod:`escape_fhir.storage.outbox`), sent once by
:class:`~escape_fhir.transport.client.Client` with the X-Request-ID fixed when it was queued, and its result
recorded. The client makes one attempt per claim (``RetryPolicy(max_attempts=1)``): retries are the
outbox's, durable and counted, not a sleeping thread's. The rules are the BaRS sender's (nhs-standards.md 1.2):

* delivered (2xx with the ids echoed, or 409 ``duplicate``: the receiver already has it) -> ``delivered``;
* 408, 429, 503, connection and communication failures -> ``pending`` again after the receiver's
  ``Retry-After``, else an exponential backoff; after ``max_attempts`` attempts -> ``dead``;
* any other refusal (400, 422, another 4xx...) -> ``dead`` at once: the same message would get the same answer.

A dead message stays visible (``escape-fhir outbox list --state dead``) with its last status and the BaRS
codes and locations of the receiver's OperationOutcome (never its diagnostics, which may quote patient data),
until ``escape-fhir outbox retry`` queues it again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests

from escape_fhir.errors import (
    AuthError,
    DeliveryError,
    FhirFormatError,
    MeshError,
    ReceiverRejected,
    ReceiverUnavailable,
)
from escape_fhir.fhir.formats import parse
from escape_fhir.service.common import now
from escape_fhir.service.subscriptions import NOTIFICATION, record_result
from escape_fhir.storage import Database
from escape_fhir.storage.outbox import Outbox, OutboxMessage
from escape_fhir.transport.auth import TokenProvider
from escape_fhir.transport.client import Client, Delivery, RetryPolicy
from escape_fhir.transport.headers import DOS_SERVICE_ID_SYSTEM, ODS_SYSTEM, SenderIdentity

__all__ = [
    "ClientTransport",
    "MeshSender",
    "NoRoute",
    "Policy",
    "Report",
    "Runner",
    "Transport",
    "mesh_destination",
    "resolve_route",
]

log = logging.getLogger("escape_fhir.outbox")
Json = dict[str, Any]


class NoRoute(DeliveryError):
    """The message's destination is neither an http(s) URL nor a BaRS endpoint named in the routes."""


@dataclass(frozen=True)
class Policy:
    """Attempts, backoff and lease (from the ``ESCAPE_FHIR_OUTBOX_*`` settings)."""

    max_attempts: int = 8
    backoff: float = 2.0
    backoff_max: float = 300.0
    lease: float = 120.0
    batch: int = 10

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: the receiver's Retry-After when it gave one, else exponential."""
        if retry_after is not None:
            return retry_after
        return min(self.backoff_max, self.backoff * 2.0 ** max(0, attempts - 1))


def resolve_route(destination: str, routes: Mapping[str, str]) -> str:
    """The URL to POST to: ``routes[destination]``, else the destination itself when it is an http(s) URL.

    BaRS addresses a response to the stored ``source.endpoint``, a ``system|value`` service id
    (nhs-standards.md 1.4, 1.7); the routes map such ids to the ``$process-message`` base URL that serves them.
    """
    if destination in routes:
        return routes[destination]
    if destination.startswith(("http://", "https://")) and "|" not in destination:
        return destination
    raise NoRoute(f"no route to {destination}: add it to ESCAPE_FHIR_ROUTES")


#: A destination ``mesh:<mailbox>/<workflow id>`` is sent through MESH (the hub's sites, escape_fhir.sites.hub).
MESH_PREFIX = "mesh:"


def mesh_destination(mailbox: str, workflow_id: str) -> str:
    return f"{MESH_PREFIX}{mailbox}/{workflow_id}"


class MeshSender(Protocol):
    """Sends one message to a MESH mailbox (escape_fhir.transport.mesh.MeshTransport); raises MeshError."""

    def send(
        self,
        bundle: Json,
        to_mailbox: str,
        workflow_id: str,
        *,
        fmt: str = "json",
        subject: str | None = None,
        local_id: str | None = None,
        data: bytes | None = None,
    ) -> str: ...


class Notifier(Protocol):
    """Sends one Subscription notification once (:class:`escape_fhir.transport.notify.RestHook`)."""

    def send(self, message: OutboxMessage) -> Delivery: ...


class Transport(Protocol):
    """Sends one message once; raises the DeliveryError family (the BaRS client's contract)."""

    def send(self, url: str, message: OutboxMessage, bundle: Json) -> Delivery: ...


class ClientTransport:
    """:class:`Transport` over the BaRS client: one attempt per call, one shared HTTP session."""

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        timeout: float = 30.0,
        token_provider: TokenProvider | None = None,
    ) -> None:
        self.session = session or requests.Session()
        self.timeout = timeout
        # NHS API platform authentication (signed JWT or a static bearer token), shared by every delivery so
        # the access token is fetched once and reused until shortly before it expires (nhs-standards 6.1).
        self.token_provider = token_provider

    def send(self, url: str, message: OutboxMessage, bundle: Json) -> Delivery:
        header = _header(bundle)
        client = Client(
            url,
            sender=_sender(bundle, header),
            session=self.session,
            token_provider=self.token_provider,
            retry=RetryPolicy(max_attempts=1),
            fmt=message.body_format,
            timeout=self.timeout,
        )
        return client.send_message(
            bundle,
            request_id=message.request_id,
            correlation_id=message.correlation_id,
            target_service_id=_target(header),
        )

    def close(self) -> None:
        self.session.close()


def _header(bundle: Json) -> Json:
    entries = bundle.get("entry") or [{}]
    header = entries[0].get("resource") if isinstance(entries[0], dict) else None
    return header if isinstance(header, dict) else {}


def _target(header: Json) -> str:
    """The receiver's DoS service id for NHSD-Target-Identifier, from ``destination.endpoint`` (1.2, 1.4)."""
    for destination in header.get("destination") or []:
        system, _, value = str(destination.get("endpoint", "")).partition("|")
        if system == DOS_SERVICE_ID_SYSTEM and value:
            return value
    return ""


def _sender(bundle: Json, header: Json) -> SenderIdentity:
    """Who sends (NHSD-End-User-Organisation): the Organization of ``MessageHeader.sender``."""
    sender = header.get("sender") or {}
    org: Json = {"identifier": [sender["identifier"]]} if isinstance(sender.get("identifier"), dict) else {}
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and entry.get("fullUrl") == sender.get("reference"):
            org = entry.get("resource") or {}
    ods = next((i.get("value") for i in org.get("identifier") or [] if i.get("system") == ODS_SYSTEM), None)
    return SenderIdentity(ods_code=str(ods or ""), org_name=str(org.get("name") or sender.get("display") or ""))


def error_summary(status: int | None, outcome: Mapping[str, Any] | None, reason: str = "") -> str:
    """The last error of a message: status, then each issue's BaRS code, issue code and location.

    Diagnostics are left out on purpose: a receiver may quote the message (an NHS number) in them.
    """
    parts = [f"HTTP {status}" if status is not None else reason or "no answer"]
    for issue in (outcome or {}).get("issue") or []:
        codings = (issue.get("details") or {}).get("coding") or [{}]
        where = ",".join(issue.get("expression") or [])
        text = " ".join(str(p) for p in (codings[0].get("code"), issue.get("code")) if p)
        parts.append(f"{text} at {where}" if where else text)
    return "; ".join(p for p in parts if p)


def receiver_reference(answer: Mapping[str, Any] | None) -> str | None:
    """The receiver's case reference: the identifier of the ``planned`` Encounter of its acknowledgement (1.7)."""
    for entry in (answer or {}).get("entry") or []:
        res = entry.get("resource") or {} if isinstance(entry, dict) else {}
        if res.get("resourceType") == "Encounter" and res.get("status") == "planned":
            for ident in res.get("identifier") or []:
                if isinstance(ident, dict) and ident.get("value"):
                    return str(ident["value"])
    return None


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    @property
    def claimed(self) -> int:
        return self.delivered + self.retrying + self.dead


@dataclass
class Runner:
    """Claims and delivers due messages of one database. Several runners may share a database."""

    db: Database
    transport: Transport
    policy: Policy = field(default_factory=Policy)
    routes: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] | None = None
    #: Sends the messages whose destination is ``mesh:<mailbox>/<workflow>``; None: they wait (and say why).
    mesh: MeshSender | None = None
    #: Sends Subscription notifications (outbox kind ``notification``); without one they wait in the outbox.
    notifier: Notifier | None = None
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    def _now(self) -> datetime:
        return (self.clock or now)()

    def run_once(self) -> Report:
        """Deliver every message due now (each once); messages that fail are scheduled, not retried here."""
        report = Report()
        while True:
            with self.db.write() as repo:
                claimed = Outbox(repo.session).claim(
                    self.name, self._now(), timedelta(seconds=self.policy.lease), self.policy.batch
                )
            if not claimed:
                return report
            for message in claimed:
                self.deliver(message, report)

    def run(self, stop: threading.Event, poll: float = 1.0) -> None:
        """Deliver until ``stop`` is set, sleeping until the next message falls due (at most ``poll`` s)."""
        while not stop.is_set():
            self.run_once()
            with self.db.read() as repo:
                due = Outbox(repo.session).next_due()
            wait = poll if due is None else (due - self._now()).total_seconds()
            stop.wait(min(poll, max(0.01, wait)))

    def deliver(self, message: OutboxMessage, report: Report) -> None:
        if message.destination.startswith(MESH_PREFIX):
            self._deliver_mesh(message, report)
            return
        try:
            if message.kind == NOTIFICATION:
                if self.notifier is None:
                    raise NoRoute("no notifier runs here: notifications are sent by escape-fhir serve --deliver")
                delivery = self.notifier.send(message)
            else:
                url = resolve_route(message.destination, self.routes)
                delivery = self.transport.send(url, message, parse(message.body, message.body_format))
        except ReceiverRejected as exc:
            self._dead(message, exc.status, error_summary(exc.status, exc.outcome), report)
        except ReceiverUnavailable as exc:
            self._retry(
                message, exc.status, error_summary(exc.status, exc.outcome, exc.reason), exc.retry_after, report
            )
        except AuthError as exc:
            summary = f"access token: HTTP {exc.status} {exc.error}".strip()
            if exc.transient:
                self._retry(message, exc.status, summary, None, report)
            else:
                self._dead(message, exc.status, summary, report)
        except (NoRoute, FhirFormatError) as exc:
            self._retry(message, None, str(exc), None, report)
        else:
            self._delivered(message, delivery, report)

    def _deliver_mesh(self, message: OutboxMessage, report: Report) -> None:
        """One MESH send. MESH keeps a message until the recipient acknowledges it, so a sent message is
        delivered as far as the outbox goes; the Bundle id travels as ``Mex-LocalID`` so the recipient can
        drop a repeat (a runner killed between the send and this record sends again after its lease)."""
        mailbox, _, workflow = message.destination.removeprefix(MESH_PREFIX).partition("/")
        if self.mesh is None:
            self._retry(message, None, "no MESH mailbox configured (ESCAPE_FHIR_MESH_*)", None, report)
            return
        try:
            sent = self.mesh.send(
                {"id": message.bundle_id},
                mailbox,
                workflow,
                fmt=message.body_format,
                local_id=message.bundle_id,
                data=message.body,
            )
        except MeshError as exc:
            if exc.transient:
                self._retry(message, None, f"MESH: {exc}", None, report)
            else:
                self._dead(message, None, f"MESH: {exc}", report)
            return
        with self.db.write() as repo:
            Outbox(repo.session).delivered(message.id, self.name, self._now(), 202, sent)
        log.info("outbox %d sent through MESH to %s (%s)", message.id, mailbox, sent)
        report.delivered += 1

    def _delivered(self, message: OutboxMessage, delivery: Delivery, report: Report) -> None:
        reference = None if delivery.duplicate else receiver_reference(delivery.body)
        with self.db.write() as repo:
            Outbox(repo.session).delivered(message.id, self.name, self._now(), delivery.status, reference)
        log.info("outbox %d delivered (HTTP %d%s)", message.id, delivery.status, ", duplicate" * delivery.duplicate)
        report.delivered += 1
        self._tell_subscription(message, None)

    def _tell_subscription(self, message: OutboxMessage, error: str | None) -> None:
        """A notification's result shows on its Subscription (status error with the reason, or active again)."""
        if message.kind == NOTIFICATION and message.subscription_id:
            record_result(self.db, message.subscription_id, error)

    def _retry(
        self, message: OutboxMessage, status: int | None, error: str, retry_after: float | None, report: Report
    ) -> None:
        if message.attempts >= self.policy.max_attempts:
            self._dead(message, status, f"{error}; gave up after {message.attempts} attempts", report)
            return
        now = self._now()
        retry_at = now + timedelta(seconds=self.policy.delay(message.attempts, retry_after))
        with self.db.write() as repo:
            Outbox(repo.session).failed(message.id, self.name, now, status=status, error=error, retry_at=retry_at)
        log.info("outbox %d attempt %d failed (%s); next at %s", message.id, message.attempts, error, retry_at)
        report.retrying += 1
        self._tell_subscription(
            message, f"notification {message.bundle_id}: {error}; attempt {message.attempts}, retrying"
        )

    def _dead(self, message: OutboxMessage, status: int | None, error: str, report: Report) -> None:
        with self.db.write() as repo:
            Outbox(repo.session).failed(message.id, self.name, self._now(), status=status, error=error, retry_at=None)
        log.warning("outbox %d is dead after %d attempt(s): %s", message.id, message.attempts, error)
        report.dead += 1
        self._tell_subscription(message, f"notification {message.bundle_id}: {error}; not retried")
