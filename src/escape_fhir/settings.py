"""The server's settings: one typed object, read from ``ESCAPE_FHIR_*`` environment variables (STYLE.md 11).

Never built at import time: ``escape-fhir serve`` and the tests build one and hand it to
:func:`escape_fhir.api.create_app`.

``ESCAPE_FHIR_TOKENS`` is a JSON object from bearer token to its scopes, e.g.
``{"9b1d...long-random...": ["submit", "read"]}``. Scopes: ``submit`` (``$process-message`` and
transactions), ``triage`` (Task updates), ``read`` (read, version read, history, search) and ``validate``
(``$validate``). Tokens shorter than 24 characters or that look like placeholders are refused.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/escape-fhir.sqlite3"
MIN_TOKEN_LENGTH = 24
_PLACEHOLDERS = ("changeme", "change-me", "secret", "password", "token", "xxxx", "example")


class Scope(StrEnum):
    SUBMIT = "submit"
    TRIAGE = "triage"
    READ = "read"
    VALIDATE = "validate"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCAPE_FHIR_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database_url: str = DEFAULT_DATABASE_URL
    #: Bearer token -> scopes. Empty: the server runs open, and only on a loopback address.
    tokens: dict[str, frozenset[Scope]] = Field(default_factory=dict)
    #: Request bodies above this size get 413 (FHIR http.html: the server may refuse large content).
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    #: Migrate the database to the newest schema when the app starts.
    migrate: bool = True
    #: Absolute base URL written in fullUrls and links; empty: taken from each request.
    base_url: str = ""
    log_level: str = "INFO"
    #: FHIR packages the validator loads besides the project's own and the package cache: folders or .tgz
    #: files (e.g. UK Core), or ``name#version`` in ``~/.fhir/packages``. JSON list in the environment.
    packages: list[str] = Field(default_factory=list)
    #: The outbox (README "Sending referrals and the outbox"): a message is dead after this many attempts;
    #: retries wait ``outbox_backoff_seconds`` doubling up to ``outbox_backoff_max_seconds`` unless the
    #: receiver's Retry-After says otherwise (nhs-standards.md 1.2); a runner holds a message for
    #: ``outbox_lease_seconds`` (longer than one delivery may take) before another runner may take it over.
    outbox_max_attempts: int = Field(8, ge=1)
    outbox_backoff_seconds: float = Field(2.0, gt=0)
    outbox_backoff_max_seconds: float = Field(300.0, gt=0)
    outbox_lease_seconds: float = Field(120.0, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    #: BaRS endpoint ``system|value`` (a MessageHeader ``source.endpoint``) -> base URL of its
    #: ``$process-message``, for asynchronous responses. JSON object in the environment.
    routes: dict[str, str] = Field(default_factory=dict)

    @field_validator("tokens")
    @classmethod
    def _real_tokens(cls, tokens: dict[str, frozenset[Scope]]) -> dict[str, frozenset[Scope]]:
        for token, scopes in tokens.items():
            lowered = token.lower()
            if len(token) < MIN_TOKEN_LENGTH or any(p in lowered for p in _PLACEHOLDERS):
                raise ValueError(f"bearer tokens must be random strings of {MIN_TOKEN_LENGTH}+ characters")
            if not scopes:
                raise ValueError("every bearer token needs at least one scope")
        return tokens

    @property
    def open_access(self) -> bool:
        """No tokens configured: every request is allowed (only permitted on loopback)."""
        return not self.tokens

    @property
    def loopback(self) -> bool:
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def sqlite_path(self) -> Path | None:
        """The SQLite file of ``database_url``, or None for another database or an in-memory one."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None


class SettingsError(ValueError):
    """Settings the server refuses to start with."""


def check_startable(settings: Settings) -> None:
    """No tokens is allowed only on a loopback address (anyone who can connect could read patient data)."""
    if settings.open_access and not settings.loopback:
        raise SettingsError(
            f"refusing to serve on {settings.host} without bearer tokens: set ESCAPE_FHIR_TOKENS, "
            "or bind to 127.0.0.1 for local use"
        )
