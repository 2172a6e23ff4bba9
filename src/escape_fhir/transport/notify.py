"""Sending one Subscription notification over the rest-hook channel (FHIR R4 subscription.html).

Without a payload: ``POST`` to the endpoint with no body. With one: ``PUT [endpoint]/{Type}/{id}`` of the
resource in the payload's format. The Subscription's ``channel.header`` values go with each request, read
when it is sent (a Subscription switched ``off`` or deleted since stops its queued notifications). The answer
is judged as the BaRS client judges a receiver's (the outbox's rules): 2xx delivered; 408, 429, 5xx and
network failures retried; any other status refused for good.
"""

from __future__ import annotations

from typing import Any

import requests

from escape_fhir.errors import ReceiverRejected, ReceiverUnavailable
from escape_fhir.service.subscriptions import event_key, headers_of
from escape_fhir.storage import Database
from escape_fhir.storage.outbox import OutboxMessage
from escape_fhir.transport.client import Delivery

_RETRIED = {408, 429}
_MIME = {"json": "application/fhir+json", "xml": "application/fhir+xml"}


class RestHook:
    def __init__(self, db: Database, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self.db = db
        self.session = session or requests.Session()
        self.timeout = timeout

    def send(self, message: OutboxMessage) -> Delivery:
        """One notification. Redirects are never followed: the endpoint was checked against the allowed hosts
        (Settings.subscription_hosts) and its headers may carry a credential, so a 3xx is a refusal."""
        with self.db.read() as repo:
            sub = repo.current("Subscription", message.subscription_id or "")
        if sub is None or sub.deleted or sub.content.get("status") == "off":
            raise ReceiverRejected(410, None, {}, request_id=message.request_id)
        headers = headers_of(sub.content)
        key = event_key(message.bundle_id)
        try:
            if message.body and key is not None:
                url = f"{message.destination.rstrip('/')}/{key[0]}/{key[1]}"
                headers["Content-Type"] = _MIME[message.body_format]
                answer = self.session.put(
                    url, data=message.body, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            else:
                answer = self.session.post(
                    message.destination, headers=headers, timeout=self.timeout, allow_redirects=False
                )
        except requests.RequestException as exc:
            raise ReceiverUnavailable(f"{type(exc).__name__}", request_id=message.request_id) from None
        status = answer.status_code
        if 200 <= status < 300:
            return Delivery(status, None, dict(answer.headers), message.request_id, message.correlation_id, 1)
        if status in _RETRIED or status >= 500:
            raise ReceiverUnavailable(f"HTTP {status}", status=status, retry_after=_retry_after(answer))
        raise ReceiverRejected(status, None, {k.lower(): v for k, v in answer.headers.items()})

    def close(self) -> None:
        self.session.close()


def _retry_after(answer: Any) -> float | None:
    value = answer.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
