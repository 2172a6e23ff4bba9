"""Bearer tokens with scopes (RFC 6750). ``/metadata`` is open; every other route needs a scope, and which
one is decided by :mod:`escape_fhir.service.permissions` (this module only finds out who is calling).

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
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request

from escape_fhir.service import permissions
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.permissions import Action
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


def caller_scopes(request: Request) -> frozenset[Scope]:
    """The scopes of the request's bearer token (every scope on an open server); 401 without a valid one."""
    settings: Settings = request.app.state.settings
    if settings.open_access:
        return permissions.EVERY_SCOPE
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    scopes = scopes_of(settings, token.strip())
    if scopes is None:
        raise _unauthorized("the bearer token is not valid")
    return scopes


#: The caller's scopes, for routes whose permission depends on what the request holds (``POST /``).
Scopes = Annotated[frozenset[Scope], Depends(caller_scopes)]


def permit(action: Action, resource_type: str = permissions.ANY) -> Any:
    """A dependency refusing requests without a token (401) or that :mod:`~escape_fhir.service.permissions`
    does not allow ``action`` on ``resource_type`` (403, or 422 when nobody may)."""

    def check(scopes: Scopes) -> None:
        permissions.allow(scopes, action, resource_type)

    dependency: Callable[[frozenset[Scope]], None] = check
    return Depends(dependency)
