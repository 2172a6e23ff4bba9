"""A real OAuth2 token endpoint on loopback, of the NHS API platform signed-JWT kind (nhs-standards.md 6.1).

``POST /oauth2/token`` takes ``grant_type=client_credentials`` with a JWT client assertion (RFC 7523) and
checks it as the platform does: the signature against the public key registered for the header's ``kid``
(RS512), ``iss`` == ``sub`` == a registered API key, ``aud`` == this endpoint's URL exactly, ``exp`` not past
and at most 5 minutes ahead, ``jti`` never seen before. It answers ``{"access_token", "expires_in",
"token_type"}`` where the access token is a JWT signed with the server's own RSA key (RS512), so that a
receiver configured with :attr:`TokenServer.public_key_pem` can verify it. Refusals are RFC 6749 5.2 errors.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME = 300


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def new_key_pair() -> KeyPair:
    """A fresh 2048-bit RSA key pair as PEM text (test keys only)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(private.decode("ascii"), public.decode("ascii"))


class Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        self.status, self.error, self.description = status, error, description
        super().__init__(description)


class TokenServer:
    """The token endpoint: register clients, start, read ``token_url`` / ``issuer`` / ``public_key_pem``."""

    def __init__(
        self,
        *,
        audience: str,
        expires_in: int = 600,
        scope: str = "submit",
        clock: Callable[[], float] = time.time,
        keys: KeyPair | None = None,
    ) -> None:
        self.audience, self.expires_in, self.scope, self.clock = audience, expires_in, scope, clock
        self.keys = keys or new_key_pair()
        self.clients: dict[tuple[str, str], str] = {}  # (api key, kid) -> public key PEM
        self.seen_jti: set[str] = set()
        self.issued = 0
        self.refusals: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.issuer = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.token_url = f"{self.issuer}/oauth2/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def public_key_pem(self) -> str:
        return self.keys.public_pem

    def register(self, api_key: str, kid: str, public_pem: str) -> None:
        self.clients[(api_key, kid)] = public_pem

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def access_token(self, **overrides: Any) -> str:
        """An access token as this server issues it; ``overrides`` change or (None) drop claims."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "test-client",
            "iat": now,
            "exp": now + self.expires_in,
            "jti": str(uuid.uuid4()),
            "scope": self.scope,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.keys.private_pem, algorithm="RS512", headers={"kid": "token-server"})

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """The token response for a form, or Refused."""
        if form.get("grant_type") != "client_credentials":
            raise Refused(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise Refused(400, "invalid_request", "client_assertion_type must be the jwt-bearer URN")
        claims = self._verify(form.get("client_assertion", ""))
        with self._lock:
            if claims["jti"] in self.seen_jti:
                raise Refused(401, "invalid_request", "jti has already been used")
            self.seen_jti.add(claims["jti"])
            self.issued += 1
        token = self.access_token(sub=claims["sub"])
        return {"access_token": token, "expires_in": str(self.expires_in), "token_type": "Bearer"}

    def _verify(self, assertion: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(assertion)
            claimed = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Refused(400, "invalid_request", "client_assertion is not a JWT") from None
        key = self.clients.get((str(claimed.get("iss")), str(header.get("kid"))))
        if key is None or header.get("alg") != "RS512":
            raise Refused(401, "invalid_client", "unknown iss/kid or an algorithm other than RS512")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=["RS512"],
                audience=self.token_url,
                options={"require": ["iss", "sub", "aud", "jti", "exp"], "verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            raise Refused(401, "invalid_request", "aud must be the token URL") from None
        except jwt.PyJWTError as exc:
            raise Refused(401, "invalid_client", f"client_assertion refused: {type(exc).__name__}") from None
        now = self.clock()
        if claims["sub"] != claims["iss"]:
            raise Refused(401, "invalid_request", "sub must equal iss (the API key)")
        if not isinstance(claims["exp"], int) or claims["exp"] <= now:
            raise Refused(401, "invalid_request", "exp is in the past")
        if claims["exp"] > now + MAX_LIFETIME:
            raise Refused(401, "invalid_request", "exp is more than 5 minutes in the future")
        return claims


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fields = parse_qs(self.rfile.read(length).decode("ascii"))
            form = {k: v[0] for k, v in fields.items()}
            if self.path != "/oauth2/token":
                self._answer(404, {"error": "not_found"})
                return
            try:
                self._answer(200, server.exchange(form))
            except Refused as refused:
                server.refusals.append(refused.description)
                self._answer(refused.status, {"error": refused.error, "error_description": refused.description})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output is not a server log."""

    return Handler
