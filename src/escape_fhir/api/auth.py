"""Bearer tokens with scopes (RFC 6750). ``/metadata`` is open; every other route needs a scope.

Tokens are compared in constant time: the SHA-256 of the presented token against that of every configured
token, with no early exit, so timing tells nothing about how much of a token matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request

from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.settings import Scope, Settings


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def scopes_of(settings: Settings, token: str) -> frozenset[Scope] | None:
    presented = _digest(token)
    found: frozenset[Scope] | None = None
    for candidate, scopes in settings.tokens.items():
        if hmac.compare_digest(presented, _digest(candidate)):
            found = scopes
    return found


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
