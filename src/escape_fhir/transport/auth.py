"""Access tokens for outbound requests: NHS API platform application-restricted signed JWT (nhs-standards.md 6.1).

:class:`SignedJwtTokenProvider` signs a client assertion with the application's private key (RS512, header
``kid``; ``iss`` = ``sub`` = API key, ``aud`` = the token URL exactly, ``jti`` a fresh UUID, ``exp`` at most
5 minutes ahead), exchanges it at the token URL for a bearer token (OAuth2 client credentials with a
private-key JWT, RFC 7523) and keeps that token until shortly before it expires. :class:`StaticTokenProvider`
hands out one configured token (the static bearer tokens of an escape-fhir endpoint).

PyJWT signs (STYLE.md 12: a kept library for JWT). Neither the key, the assertion nor a token is ever logged.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from escape_fhir.errors import AuthError, InputError

__all__ = ["CLIENT_ASSERTION_TYPE", "SignedJwtTokenProvider", "StaticTokenProvider", "TokenProvider"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The NHS API platform refuses an assertion whose ``exp`` is more than 5 minutes ahead (nhs-standards.md 6.1).
MAX_ASSERTION_LIFETIME = 300


class TokenProvider(Protocol):
    """Where the client gets the bearer token of each request."""

    def token(self) -> str:
        """A bearer token valid now (may raise :class:`~escape_fhir.errors.AuthError`)."""
        ...

    def invalidate(self) -> None:
        """Forget a cached token (the receiver answered 401 to it)."""
        ...


class StaticTokenProvider:
    """One fixed bearer token (e.g. a token of ``ESCAPE_FHIR_TOKENS`` on the receiving endpoint)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        """Nothing to refresh: a static token stays what it is."""


def load_private_key(pem: str | bytes) -> RSAPrivateKey:
    """An RSA private key from PEM; InputError (never the key's text) when it is not one."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"the signing key is not a readable unencrypted PEM private key ({type(exc).__name__})"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise InputError("the signing key must be an RSA private key (RS512, nhs-standards.md 6.1)")
    return key


class SignedJwtTokenProvider:
    """Bearer tokens from an NHS API platform style token endpoint, cached until ``margin`` seconds before
    they expire. Safe to share between threads (one token request at a time)."""

    def __init__(
        self,
        token_url: str,
        api_key: str,
        private_key_pem: str | bytes,
        kid: str,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        lifetime: int = MAX_ASSERTION_LIFETIME,
        margin: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
            raise InputError(f"the client assertion lifetime must be 1..{MAX_ASSERTION_LIFETIME} seconds")
        self.token_url = token_url
        self.api_key = api_key
        self.kid = kid
        self._key = load_private_key(private_key_pem)
        self._session = session or requests.Session()
        self._clock = clock
        self._lifetime = lifetime
        self._margin = margin
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (access token, time after which it is not used)

    def client_assertion(self) -> str:
        """A fresh signed JWT: RS512, ``kid``; iss = sub = API key, aud = token URL, new jti, exp <= now + 5 min."""
        now = int(self._clock())
        claims = {
            "iss": self.api_key,
            "sub": self.api_key,
            "aud": self.token_url,
            "jti": str(uuid.uuid4()),
            "exp": now + self._lifetime,
        }
        return jwt.encode(claims, self._key, algorithm="RS512", headers={"kid": self.kid, "typ": "JWT"})

    def token(self) -> str:
        with self._lock:
            if self._cached is not None and self._clock() < self._cached[1]:
                return self._cached[0]
            token, expires_in = self._request_token()
            self._cached = (token, self._clock() + max(0.0, expires_in - self._margin))
            return token

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _request_token(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        try:
            response = self._session.post(self.token_url, data=form, timeout=self._timeout)
        except requests.RequestException as exc:
            raise AuthError(f"the token endpoint {self.token_url} cannot be reached ({type(exc).__name__})") from exc
        body = _json_or_empty(response)
        if response.status_code != 200:
            error, description = str(body.get("error", "")), str(body.get("error_description", ""))
            text = f"the token endpoint refused the client assertion: HTTP {response.status_code} {error} {description}"
            raise AuthError(text.strip(), status=response.status_code, error=error, description=description)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("the token endpoint answered without an access_token", status=response.status_code)
        return token, _seconds(body.get("expires_in"))


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: Any) -> float:
    """``expires_in`` (the NHS platform sends it as a string, e.g. "599"); 0 (do not cache) when absent or bad."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0
