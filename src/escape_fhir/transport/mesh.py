"""MESH mailbox transport through NHS England's ``mesh-client`` (nhs-standards.md 6.3).

MESH is store-and-forward: a sender posts a message to a recipient mailbox with a workflow id; the
recipient lists its inbox, downloads each message and acknowledges it, which deletes it from MESH. A FHIR
Bundle travels as an opaque payload with ``Mex-Content-Type: application/fhir+json`` (or ``+xml``), and the
Bundle id as ``Mex-LocalID`` so that both ends can find and deduplicate it.

:class:`MeshTransport` sends and polls; what a received message means is the handler's business (for
referrals: :mod:`escape_fhir.service.mesh_intake`). The acknowledgement rule, so that nothing acknowledged
is lost and a poison message cannot block the inbox:

- the handler returns a :class:`Handled` whose :class:`Disposition` says what became of the message;
- ``processed``, ``duplicate`` (already processed), ``refused`` (recorded durably with its reason by the
  handler before it returns) and ``report`` (a MESH report, recorded) are acknowledged;
- ``left`` is not: a failure that is not the message's fault (database down, a bug: the handler raised)
  leaves it in the inbox to be tried again by the next poll. MESH returns a message nobody acknowledges to
  its sender as undeliverable after the inbox expiry (5 days in mesh-sandbox's defaults), so even then it
  is not lost silently.

One message's failure never stops the others. Logs carry MESH ids, mailboxes and workflow ids, never the
content, and never the password or shared key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

import mesh_client
import requests

from escape_fhir.errors import MeshError
from escape_fhir.fhir.formats import MIME, dump
from escape_fhir.settings import Settings, SettingsError, is_loopback

__all__ = ["Disposition", "Handled", "InboundMessage", "MeshTransport", "Received"]

Json = dict[str, Any]
log = logging.getLogger("escape_fhir.mesh")

#: ``Mex-MessageType`` of a message a partner sent; MESH's own reports (e.g. non-delivery) are ``REPORT``.
DATA, REPORT = "DATA", "REPORT"


@dataclass(frozen=True)
class InboundMessage:
    """One downloaded inbox message: its bytes and the MESH headers the handler may need.

    ``headers`` holds every ``Mex-*`` header, lower-case and without the prefix (e.g. ``statuscode``,
    ``linkedmsgid`` on a report).
    """

    message_id: str
    message_type: str
    sender: str | None
    workflow_id: str | None
    local_id: str | None
    subject: str | None
    content_type: str | None
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Disposition(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    REPORT = "report"
    LEFT = "left"


#: What is acknowledged (the module docstring says why).
ACKNOWLEDGED = frozenset({Disposition.PROCESSED, Disposition.DUPLICATE, Disposition.REFUSED, Disposition.REPORT})


@dataclass(frozen=True)
class Handled:
    """What became of a message, and one line about it without patient data."""

    disposition: Disposition
    detail: str = ""

    @property
    def acknowledge(self) -> bool:
        return self.disposition in ACKNOWLEDGED


@dataclass(frozen=True)
class Received:
    """One message of a poll: how it was handled and whether MESH confirmed its acknowledgement."""

    message_id: str
    handled: Handled
    acknowledged: bool


Handler = Callable[[InboundMessage], Handled]


class MeshTransport:
    """A session with one MESH mailbox (``with MeshTransport(settings) as mesh: ...``).

    ``settings`` gives the API URL, the mailbox, its password, the environment's shared key (else
    mesh-client's ``MESH_CLIENT_SHARED_KEY``), the client certificate and key for mutual TLS and the CA
    bundle (nhs-standards.md 6.3, "Authentication"). Plain ``http://`` is refused except on loopback (the
    sandbox): the password's HMAC and patient data would cross the network in clear.
    """

    def __init__(self, settings: Settings) -> None:
        url, mailbox = _required(settings)
        self.mailbox = mailbox
        shared_key = settings.mesh_shared_key.get_secret_value()
        self._client = mesh_client.MeshClient(
            url,
            mailbox,
            settings.mesh_password.get_secret_value(),
            shared_key=shared_key.encode() if shared_key else None,
            cert=_cert(settings),
            verify=settings.mesh_ca_bundle or (None if settings.mesh_verify else False),
            application_name="escape-fhir",
        )

    def __enter__(self) -> MeshTransport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def handshake(self) -> None:
        """Authenticate and announce the client (MESH asks for one handshake a day per mailbox)."""
        with _translated("handshake"):
            self._client.handshake()  # type: ignore[no-untyped-call]

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
    ) -> str:
        """Send a Bundle to ``to_mailbox``; the MESH message id.

        ``data`` are the exact bytes to send (else ``bundle`` written as ``fmt``); ``local_id`` defaults to
        the Bundle id. mesh-client never retries the first POST to the outbox, so a failure here may be
        retried by the caller only after checking tracking by local id (no message is sent twice silently).
        """
        payload = data if data is not None else dump(bundle, fmt)
        options: dict[str, Any] = {"workflow_id": workflow_id, "content_type": MIME[fmt]}
        local_id = local_id or bundle.get("id")
        options.update({k: v for k, v in (("local_id", local_id), ("subject", subject)) if v})
        with _translated("send"):
            message_id: str = self._client.send_message(to_mailbox, payload, **options)
        log.info("MESH sent %s from %s to %s, workflow %s", message_id, self.mailbox, to_mailbox, workflow_id)
        return message_id

    def inbox(self, workflow_id: str | None = None) -> list[str]:
        """The ids of the messages waiting in the inbox (all pages; only ``workflow_id``'s if given)."""
        with _translated("list the inbox"):
            return list(self._client.iterate_message_ids(workflow_filter=workflow_id))

    def poll(self, handler: Handler, *, workflow_id: str | None = None) -> list[Received]:
        """Download each inbox message, hand it to ``handler``, acknowledge it by the module's rule.

        The ids are listed first, so acknowledging does not disturb the listing's pages.
        """
        return [self._receive(message_id, handler) for message_id in self.inbox(workflow_id)]

    def _receive(self, message_id: str, handler: Handler) -> Received:
        try:
            message = self._download(message_id)
        except MeshError as exc:
            log.warning("MESH message %s not downloaded: %s", message_id, exc)
            return Received(message_id, Handled(Disposition.LEFT, f"not downloaded: {exc}"), False)
        try:
            handled = handler(message)
        except Exception as exc:  # one message's failure must not stop the poll; its text may hold patient data
            log.error("MESH message %s: handler failed (%s); left in the inbox", message_id, type(exc).__name__)
            handled = Handled(Disposition.LEFT, f"processing failed ({type(exc).__name__}); left in the inbox")
        acknowledged = handled.acknowledge and self._acknowledge(message_id)
        log.info(
            "MESH message %s from %s, workflow %s: %s%s",
            message_id,
            message.sender,
            message.workflow_id,
            handled.disposition,
            "" if acknowledged else ", not acknowledged",
        )
        return Received(message_id, handled, acknowledged)

    def _download(self, message_id: str) -> InboundMessage:
        with _translated(f"download message {message_id}"):
            got = self._client.retrieve_message(message_id)
            try:
                data = got.read()
            finally:
                got.close()  # type: ignore[no-untyped-call]
            headers = {str(k): str(v) for k, v in got.mex_headers()}  # type: ignore[no-untyped-call]
        return InboundMessage(
            message_id=message_id,
            message_type=got.message_type or DATA,
            sender=got.sender,
            workflow_id=got.workflow_id,
            local_id=got.local_id,
            subject=got.subject,
            content_type=got.content_type,
            data=bytes(data),
            headers=headers,
        )

    def _acknowledge(self, message_id: str) -> bool:
        """Acknowledge; False (logged) if MESH did not confirm: the next poll sees it again and the handler
        answers ``duplicate`` (it was handled), so it is acknowledged then."""
        try:
            with _translated(f"acknowledge message {message_id}"):
                self._client.acknowledge_message(message_id)
        except MeshError as exc:
            log.warning("MESH message %s handled but not acknowledged: %s", message_id, exc)
            return False
        return True


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """mesh-client's and requests' errors as :class:`MeshError` (STYLE.md: translate at the boundary)."""
    try:
        yield
    except mesh_client.MeshError as exc:
        reason = str(exc.args[0]) if exc.args else "refused"
        raise MeshError(f"MESH refused to {action}: {reason}") from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise MeshError(f"MESH refused to {action}: HTTP {status}", status=status) from exc
    except requests.RequestException as exc:
        raise MeshError(f"MESH unreachable, could not {action}: {type(exc).__name__}", reached=False) from exc


def _required(settings: Settings) -> tuple[str, str]:
    url, mailbox = settings.mesh_url.rstrip("/"), settings.mesh_mailbox
    if not url or not mailbox or not settings.mesh_password.get_secret_value():
        raise SettingsError("MESH needs ESCAPE_FHIR_MESH_URL, ESCAPE_FHIR_MESH_MAILBOX and ESCAPE_FHIR_MESH_PASSWORD")
    parsed = urlparse(url)
    if parsed.scheme == "http" and not is_loopback(parsed.hostname or ""):
        raise SettingsError(f"refusing plain http to MESH at {parsed.hostname}: use https (mutual TLS)")
    if parsed.scheme not in ("http", "https"):
        raise SettingsError("ESCAPE_FHIR_MESH_URL must be an https:// URL")
    return url, mailbox


def _cert(settings: Settings) -> tuple[str, str] | None:
    cert, key = settings.mesh_client_cert, settings.mesh_client_key
    if bool(cert) != bool(key):
        raise SettingsError("ESCAPE_FHIR_MESH_CLIENT_CERT and ESCAPE_FHIR_MESH_CLIENT_KEY go together")
    return (str(cert), str(key)) if cert and key else None
