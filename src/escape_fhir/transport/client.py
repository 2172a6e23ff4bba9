"""The outbound client: sends a FHIR message Bundle to a receiver's ``$process-message`` (nhs-standards.md 1.1).

One :meth:`Client.send_message` call is one message: one ``X-Request-ID`` for every attempt, so a receiver
that already has it answers 409 ``duplicate`` and the message is never stored twice (nhs-standards.md 1.2).
The rules of the BaRS sender (IG ``Transactional-integrity/Sender-responsibilities``, nhs-standards.md 1.2):

* 2xx with both X-* ids echoed: delivered.
* 409 whose OperationOutcome's errors all have code ``duplicate``: the receiver already has this request:
  delivered (``Delivery.duplicate``). Nothing else counts as delivered: a 409 with any other code, and every
  422 (e.g. a ``new`` message for a referral the receiver holds, which must be sent as an ``update``; a Bundle
  id reused for other content) are refusals, so a correction is never taken for a message already delivered.
* 408, 429, 503, connection failures and timeouts: retried with exponential backoff and jitter, waiting at
  least the ``Retry-After`` the receiver asks for (seconds or an HTTP-date). A ``Retry-After`` longer than
  ``RetryPolicy.max_delay`` is not waited for: the send stops with :class:`ReceiverUnavailable` carrying
  ``retry_after``, so that a caller with an outbox schedules the next try instead of holding a thread.
* "A response with no OperationOutcome or no X-* ids is a comms failure": a 5xx without an OperationOutcome
  (a proxy's or gateway's page, not the receiver's answer) and a 2xx without the echoed ids are retried like
  a connection failure. Other 4xx are never retried, with or without an OperationOutcome.
* Every other answer is final: :class:`ReceiverRejected` with the status, the OperationOutcome and headers.
* 401 from the receiver: the token is refreshed and the request sent again, once.

The session is injected (STYLE.md, httpx anchor): tests pass a real ``requests.Session`` talking to a
loopback server. Nothing of the message body, the token or a patient is logged: only ids, status, attempt.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from escape_fhir.errors import FhirFormatError, InputError, ReceiverRejected, ReceiverUnavailable
from escape_fhir.fhir.formats import MIME, dump, format_from_mime, parse
from escape_fhir.transport.auth import TokenProvider
from escape_fhir.transport.headers import SenderIdentity, message_headers

__all__ = ["Client", "Delivery", "RetryPolicy"]

log = logging.getLogger("escape_fhir.transport")

#: The statuses a BaRS sender retries (nhs-standards.md 1.2).
RETRY_STATUSES = frozenset({408, 429, 503})
PROCESS_MESSAGE = "$process-message"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: attempt n waits ``min(max_delay, base_delay * 2**(n-1))`` less a random
    share of up to ``jitter`` of it (so senders do not retry in step), and at least the ``Retry-After``.

    ``sleep``, ``rand`` and ``clock`` are injectable so tests record waits instead of waiting.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise InputError("retry policy: max_attempts >= 1, delays >= 0 and 0 <= jitter <= 1")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based), before ``Retry-After`` is considered."""
        delay = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return delay * (1 - self.jitter * self.rand())


@dataclass(frozen=True)
class Delivery:
    """A delivered message: the receiver's status, its answer (the acknowledgement Bundle, or the 409
    OperationOutcome of a duplicate), the response headers (lower-case names), the ids sent, the number of
    attempts and whether the receiver already had the message."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]
    request_id: str
    correlation_id: str
    attempts: int
    duplicate: bool = False


@dataclass(frozen=True)
class _Answer:
    """One attempt's outcome: a response, or (status None) a connection failure described by ``failure``."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    failure: str = ""

    @property
    def outcome(self) -> dict[str, Any] | None:
        return self.body if self.body is not None and self.body.get("resourceType") == "OperationOutcome" else None


@dataclass(frozen=True)
class _Retry:
    reason: str
    answer: _Answer
    retry_after: float | None = None


class Client:
    """Sends message Bundles to one receiver (``base_url``: its FHIR base, or its ``$process-message`` URL)."""

    def __init__(
        self,
        base_url: str,
        *,
        sender: SenderIdentity,
        session: requests.Session | None = None,
        token_provider: TokenProvider | None = None,
        retry: RetryPolicy | None = None,
        fmt: str = "json",
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(f"the receiver URL must be an http(s) URL, not {base_url!r}")
        if fmt not in MIME:
            raise InputError(f"format must be json or xml, not {fmt!r}")
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/" + PROCESS_MESSAGE) else f"{base}/{PROCESS_MESSAGE}"
        self.sender = sender
        self.fmt = fmt
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._session = session or requests.Session()
        self._tokens = token_provider

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def send_message(
        self,
        bundle: Mapping[str, Any],
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
        target_service_id: str | None = None,
    ) -> Delivery:
        """Deliver ``bundle`` or raise a :class:`~escape_fhir.errors.DeliveryError`.

        ``request_id`` (default a new UUID) is sent on every attempt; pass the same one to send the same message
        again later. ``correlation_id`` (default a new UUID) names the conversation (nhs-standards.md 1.2).
        """
        request_id = request_id or str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        body = dump(dict(bundle), self.fmt)
        headers = message_headers(
            self.sender,
            request_id=request_id,
            correlation_id=correlation_id,
            fmt=self.fmt,
            target_service_id=target_service_id or "",
            bundle=bundle,
        )
        return self._deliver(body, headers, request_id, correlation_id)

    def _deliver(self, body: bytes, headers: dict[str, str], request_id: str, correlation_id: str) -> Delivery:
        attempts, refreshed = 0, False
        while True:
            attempts += 1
            answer = self._attempt(body, headers)
            log.info("message %s attempt %d: %s", request_id, attempts, answer.status or answer.failure)
            if answer.status == 401 and self._tokens is not None and not refreshed:
                refreshed = True  # the token may have been revoked or expired early: one fresh token
                self._tokens.invalidate()
                continue
            verdict = _judge(answer, request_id, correlation_id, self.retry.clock)
            if isinstance(verdict, bool):
                return Delivery(
                    answer.status or 0, answer.body, answer.headers, request_id, correlation_id, attempts, verdict
                )
            if verdict is None:
                raise ReceiverRejected(
                    answer.status or 0, answer.outcome, answer.headers, request_id=request_id, attempts=attempts
                )
            self._wait_or_give_up(verdict, attempts, request_id)

    def _attempt(self, body: bytes, headers: dict[str, str]) -> _Answer:
        sent = dict(headers)
        if self._tokens is not None:
            sent["Authorization"] = f"Bearer {self._tokens.token()}"
        try:
            response = self._session.post(self.url, data=body, headers=sent, timeout=self.timeout)
        except requests.RequestException as exc:
            return _Answer(None, failure=f"connection failure ({type(exc).__name__})")
        received = {k.lower(): v for k, v in response.headers.items()}
        return _Answer(response.status_code, received, _read_body(response.content, received.get("content-type", "")))

    def _wait_or_give_up(self, retry: _Retry, attempts: int, request_id: str) -> None:
        policy = self.retry
        wait = policy.backoff(attempts)
        too_long = retry.retry_after is not None and retry.retry_after > policy.max_delay
        if attempts >= policy.max_attempts or too_long:
            answer = retry.answer
            raise ReceiverUnavailable(
                retry.reason,
                status=answer.status,
                retry_after=retry.retry_after,
                outcome=answer.outcome,
                request_id=request_id,
                attempts=attempts,
            )
        if retry.retry_after is not None:
            wait = max(wait, retry.retry_after)
        policy.sleep(wait)


def _judge(answer: _Answer, request_id: str, correlation_id: str, now: Callable[[], float]) -> bool | _Retry | None:
    """True/False: delivered (duplicate or not); a _Retry: try again; None: the receiver's final refusal."""
    status = answer.status
    if status is None:
        return _Retry(answer.failure, answer)
    if 200 <= status < 300:
        echoed = answer.headers.get("x-request-id") == request_id
        echoed = echoed and answer.headers.get("x-correlation-id") == correlation_id
        return False if echoed else _Retry(f"HTTP {status} without the echoed X-Request-ID/X-Correlation-ID", answer)
    if status == 409 and _only_duplicate(answer.outcome):
        return True
    if status in RETRY_STATUSES:
        return _Retry(f"HTTP {status}", answer, retry_after(answer.headers.get("retry-after"), now))
    if status >= 500 and answer.outcome is None:
        return _Retry(f"HTTP {status} without an OperationOutcome", answer)
    return None


def _only_duplicate(outcome: Mapping[str, Any] | None) -> bool:
    """An OperationOutcome whose errors are all ``duplicate`` (BaRS 409 REC_CONFLICT for a repeated request)."""
    issues = [i for i in (outcome or {}).get("issue") or [] if isinstance(i, dict)]
    errors = [i for i in issues if i.get("severity") in ("error", "fatal")]
    return bool(errors) and all(i.get("code") == "duplicate" for i in errors)


def _read_body(content: bytes, content_type: str) -> dict[str, Any] | None:
    """The response as a FHIR resource (JSON or XML), or None when it is empty or not FHIR."""
    if not content:
        return None
    try:
        return parse(content, format_from_mime(content_type))
    except FhirFormatError:
        return None


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` in seconds from now: delay-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())
