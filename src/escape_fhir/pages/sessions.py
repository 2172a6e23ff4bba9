"""The pages' session: one cookie, encrypted and signed (Fernet: AES-CBC with an HMAC-SHA256, from the
``cryptography`` package the API already uses for JWTs), ``HttpOnly``, ``SameSite=Lax``, ``Secure`` over
HTTPS, valid for :data:`MAX_AGE` seconds after its last change.

Encrypted, not only signed, because a self-referral in progress is kept in it (the person's own answers and
details, on their own browser, until they send it): nothing is stored on the server for a visitor who never
sends, and several server processes share nothing but the key (``ESCAPE_FHIR_SESSION_SECRET``).

Every session carries a CSRF token; every form posts it back and :func:`check_csrf` compares it in constant
time (the synchroniser-token pattern, OWASP CSRF cheat sheet), so another site cannot post a triage decision
or a self-referral in a signed-in person's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request
from starlette.responses import Response

COOKIE = "escape_fhir_session"
#: Seconds a session lasts after its last change (a working day).
MAX_AGE = 8 * 3600
CSRF_FIELD = "csrf_token"


def fernet_for(secret: str) -> Fernet:
    """The cookie cipher of ``secret`` (any text: it is stretched to Fernet's 32-byte key by SHA-256)."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest()))


@dataclass
class Session:
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @property
    def csrf(self) -> str:
        token = self.data.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            self.set("csrf", token)
        return token

    @property
    def username(self) -> str | None:
        user = self.data.get("user")
        return user if isinstance(user, str) else None

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed = True

    def pop(self, key: str) -> Any:
        self.changed = self.changed or key in self.data
        return self.data.pop(key, None)

    def renew(self) -> None:
        """A new session (sign-in and sign-out): a fresh CSRF token, nothing of the previous one kept, so a
        token seen before signing in is worth nothing after (session fixation)."""
        self.data = {"csrf": secrets.token_urlsafe(32)}
        self.changed = True


def session_of(request: Request) -> Session:
    """The request's session (read once per request from its cookie; a bad or expired cookie is a new one)."""
    found = getattr(request.state, "page_session", None)
    if isinstance(found, Session):
        return found
    session = Session()
    cookie = request.cookies.get(COOKIE)
    if cookie:
        try:
            data = json.loads(request.app.state.page_cipher.decrypt(cookie.encode("ascii"), ttl=MAX_AGE))
            if isinstance(data, dict):
                session.data = data
        except (InvalidToken, ValueError, UnicodeError):
            pass
    request.state.page_session = session
    return session


def persist(request: Request, response: Response) -> Response:
    """Write the session cookie on ``response`` when the session changed."""
    session = session_of(request)
    if session.changed:
        token = request.app.state.page_cipher.encrypt(json.dumps(session.data).encode("utf-8")).decode("ascii")
        secure = request.url.scheme == "https"
        response.set_cookie(COOKIE, token, max_age=MAX_AGE, httponly=True, samesite="lax", secure=secure, path="/")
    return response


def check_csrf(request: Request, form: Any) -> bool:
    """Whether the form's token is this session's."""
    sent = form.get(CSRF_FIELD)
    expected = session_of(request).data.get("csrf")
    return isinstance(sent, str) and isinstance(expected, str) and hmac.compare_digest(sent, expected)
