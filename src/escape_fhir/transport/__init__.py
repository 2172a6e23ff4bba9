"""Exchange with NHS systems (DESIGN.md capability 7): the outbound BaRS client and its access tokens.

``Client(base_url, sender=SenderIdentity(...), token_provider=..., retry=RetryPolicy(...))`` and
``client.send_message(bundle, request_id=..., correlation_id=...) -> Delivery``; failures raise the
``DeliveryError`` family of :mod:`escape_fhir.errors`.
"""

from escape_fhir.errors import AuthError, DeliveryError, ReceiverRejected, ReceiverUnavailable
from escape_fhir.transport.auth import SignedJwtTokenProvider, StaticTokenProvider, TokenProvider
from escape_fhir.transport.client import Client, Delivery, RetryPolicy
from escape_fhir.transport.headers import SenderIdentity

__all__ = [
    "AuthError",
    "Client",
    "Delivery",
    "DeliveryError",
    "ReceiverRejected",
    "ReceiverUnavailable",
    "RetryPolicy",
    "SenderIdentity",
    "SignedJwtTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
]
