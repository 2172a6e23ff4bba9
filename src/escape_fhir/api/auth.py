"""Bearer tokens with scopes (RFC 6750). ``/metadata`` is open; every other route needs a scope.

Two kinds of token are accepted:

* the static tokens of ``ESCAPE_FHIR_TOKENS``, compared in constant time: the SHA-256 of the presented token
  against that of every configured token, with no early exit, so timing tells nothing about how much of a
  token matched;
* JWT access tokens of a configured issuer (``ESCAPE_FHIR_JWT_ISSUERS``, e.g. an OAuth2 token endpoint of the
  NHS API platform kind, nhs-standards.md 6.1): RSA signature checked with the issuer's public key, ``iss``,
  ``aud`` and ``exp`` required and checked (PyJWT). Unsigned (``alg: none``) and HMAC tokens are refused.

Any failure is the same 401: the answer does not say which check failed (nor is the token logged).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request

from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.settings import JwtIssuer, Scope, Settings

#: Clock skew allowed on ``exp`` (seconds).
LEEWAY = 30


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def scopes_of(settings: Settings, token: str) -> frozenset[Scope] | None:
    presented = _digest(token)
    found: frozenset[Scope] | None = None
    for candidate, scopes in settings.tokens.items():
        if hmac.compare_digest(presented, _digest(candidate)):
            found = scopes
    if found is None and settings.jwt_issuers and token.count(".") == 2:
        found = jwt_scopes(settings.jwt_issuers, token)
    return found


@functools.lru_cache(maxsize=32)
def _public_key(pem: str) -> RSAPublicKey:
    key = load_pem_public_key(pem.encode("ascii"))
    assert isinstance(key, RSAPublicKey)  # JwtIssuer accepts only RSA keys
    return key


def jwt_scopes(issuers: Sequence[JwtIssuer], token: str) -> frozenset[Scope] | None:
    """The scopes of a valid JWT access token of one of ``issuers``; None if it is not one."""
    try:
        claimed_issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    issuer = next((i for i in issuers if i.issuer == claimed_issuer), None)
    if issuer is None:
        return None
    try:
        claims = jwt.decode(
            token,
            _public_key(issuer.public_key),
            algorithms=list(issuer.algorithms),
            audience=issuer.audience,
            issuer=issuer.issuer,
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError:
        return None
    scope = claims.get("scope")
    if not isinstance(scope, str):
        return issuer.scopes
    return frozenset(s for s in issuer.scopes if s.value in scope.split())


def _unauthorized(text: str) -> OutcomeError:
    header = 'Bearer realm="escape-fhir"'
    return OutcomeError(Problem.UNAUTHORIZED, text, location="Authorization", headers={"WWW-Authenticate": header})


def require(scope: Scope) -> Any:
    """A dependency refusing requests without a token (401) or without ``scope`` (403)."""

    def check(request: Request) -> None:
        settings: Settings = request.app.state.settings
        if settings.open_access:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        scopes = scopes_of(settings, token.strip())
        if scopes is None:
            raise _unauthorized("the bearer token is not valid")
        if scope not in scopes:
            raise OutcomeError(Problem.FORBIDDEN, f"the bearer token lacks the {scope.value} scope")

    dependency: Callable[[Request], None] = check
    return Depends(dependency)
