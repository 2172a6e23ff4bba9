"""The server's settings: one typed object, read from ``ESCAPE_FHIR_*`` environment variables (STYLE.md 11).

Never built at import time: ``escape-fhir serve`` and the tests build one and hand it to
:func:`escape_fhir.api.create_app`.

``ESCAPE_FHIR_TOKENS`` is a JSON object from bearer token to its scopes, e.g.
``{"9b1d...long-random...": ["submit", "read"]}``. Scopes: ``submit`` (``$process-message`` and
transactions), ``triage`` (Task updates), ``read`` (read, version read, history, search) and ``validate``
(``$validate``). Tokens shorter than 24 characters or that look like placeholders are refused.

``ESCAPE_FHIR_JWT_ISSUERS`` is a JSON list of OAuth2 issuers whose signed JWT access tokens are accepted
beside the static tokens, e.g. ``[{"issuer": "https://auth.example.nhs.uk", "public_key": "/etc/keys/issuer.pem",
"audience": "https://escape.example.nhs.uk", "scopes": ["submit"]}]`` (see :class:`JwtIssuer`).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/escape-fhir.sqlite3"
MIN_TOKEN_LENGTH = 24
_PLACEHOLDERS = ("changeme", "change-me", "secret", "password", "token", "xxxx", "example")


class Scope(StrEnum):
    SUBMIT = "submit"
    TRIAGE = "triage"
    READ = "read"
    VALIDATE = "validate"


#: Signature algorithms a JWT access token may use: RSA only, so no shared secret and never ``none``.
JWT_ALGORITHMS = ("RS256", "RS384", "RS512")


class JwtIssuer(BaseModel):
    """An OAuth2 issuer whose RSA-signed JWT access tokens the server accepts: the token's ``iss`` must equal
    ``issuer``, its signature verify with ``public_key`` (PEM text or the path of a PEM file), its ``aud`` hold
    ``audience`` and its ``exp`` be in the future. It gets ``scopes``, narrowed to the token's ``scope`` claim
    when it has one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1)
    public_key: str
    audience: str = Field(min_length=1)
    scopes: frozenset[Scope] = Field(min_length=1)
    algorithms: tuple[str, ...] = ("RS256", "RS512")

    @field_validator("public_key")
    @classmethod
    def _pem(cls, value: str) -> str:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        text = value
        if not value.lstrip().startswith("-----BEGIN"):
            try:
                text = Path(value).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot read the public key file {value}: {exc}") from None
        try:
            key = load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ValueError("public_key is not a PEM public key (nor the path of one)") from None
        if not isinstance(key, RSAPublicKey):
            raise ValueError("public_key must be an RSA public key (RS256/RS512 tokens)")
        return text

    @field_validator("algorithms")
    @classmethod
    def _rsa_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(a not in JWT_ALGORITHMS for a in value):
            raise ValueError(f"algorithms must be among {', '.join(JWT_ALGORITHMS)}")
        return value


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``, with or without brackets)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCAPE_FHIR_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database_url: str = DEFAULT_DATABASE_URL
    #: Server processes (uvicorn workers). More than one needs PostgreSQL: SQLite's writers take turns on a
    #: lock held in one process (storage/database.py), so several processes would poll SQLite's busy handler.
    workers: int = Field(1, ge=1, le=64)
    #: Bearer token -> scopes. Empty: the server runs open, and only on a loopback address.
    tokens: dict[str, frozenset[Scope]] = Field(default_factory=dict)
    #: Issuers of signed JWT access tokens accepted beside ``tokens``. JSON list in the environment.
    jwt_issuers: list[JwtIssuer] = Field(default_factory=list)
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
    #: The BaRS endpoints (``system|value``, e.g. ``https://fhir.nhs.uk/Id/dos-service-id|2000093114``) this
    #: service answers to. A receiver checks that a message is addressed to it (nhs-standards.md 1.4, receiver
    #: step 1): with endpoints set, a referral whose MessageHeader names none of them is refused (422).
    #: Empty: any destination is accepted. JSON list in the environment.
    endpoints: list[str] = Field(default_factory=list)
    #: Where a Subscription may send notifications: ``host`` or ``host:port`` of each allowed
    #: ``channel.endpoint`` (JSON list in the environment). Empty: any endpoint on an open (loopback, no tokens)
    #: server, none on a server with access control, so a token cannot make the server call arbitrary addresses.
    subscription_hosts: list[str] = Field(default_factory=list)
    #: A site's own red flags and exclusions (CSV or JSON of code, display, pathway) added to the built-in
    #: table (escape_fhir.site_red_flags.load_red_flags; docs/clinical-safety.md). None: the built-in table.
    red_flags: Path | None = None
    #: Hub mode (README "Hub mode"): route each new referral to its site from the site directory, forward it
    #: through the outbox or put it on the "to contact" list (escape_fhir.sites.hub).
    hub: bool = False
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
    #: MESH (nhs-standards.md 6.3; README "MESH"): the API base URL, our mailbox, its password, the
    #: environment's shared key (empty: mesh-client's MESH_CLIENT_SHARED_KEY), the client certificate and key
    #: for mutual TLS, the CA bundle (empty: mesh-client's bundle for a known NHS host, else the system's) or
    #: ``mesh_verify`` false (the loopback sandbox only), and where refused messages and MESH reports are kept.
    mesh_url: str = ""
    mesh_mailbox: str = ""
    mesh_password: SecretStr = SecretStr("")
    mesh_shared_key: SecretStr = SecretStr("")
    mesh_client_cert: Path | None = None
    mesh_client_key: Path | None = None
    mesh_ca_bundle: str = ""
    mesh_verify: bool = True
    mesh_dead_letter_dir: Path = Path("var/mesh-dead-letter")
    #: The pages (escape_fhir.pages): the staff accounts file that ``escape-fhir staff add`` writes (argon2
    #: password hashes and scopes), and the key that encrypts and signs the session cookie. An empty key is
    #: replaced by a random one when the app starts: sign-ins then end when the server restarts, and with
    #: several workers each would have its own, so set it (32+ random characters) for any real use.
    staff_file: Path = Path("var/staff.json")
    session_secret: SecretStr = SecretStr("")
    #: Self-referrals accepted from one client address per hour (the pages' rate limit).
    self_referrals_per_hour: int = Field(5, ge=1)

    @field_validator("database_url")
    @classmethod
    def _usable_database(cls, url: str) -> str:
        """A SQLite or PostgreSQL URL whose driver is installed, checked before anything connects; the message
        never repeats the URL (it may hold a password)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
            dialect = parsed.get_dialect()
        except ArgumentError:  # NoSuchModuleError (an unknown database kind) is one too
            raise ValueError(f"not a database URL we can use: {_DATABASE_KINDS}") from None
        if dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"{dialect.name} is not supported: {_DATABASE_KINDS}") from None
        try:
            dialect.import_dbapi()
        except ImportError:
            raise ValueError(f"the driver {parsed.drivername} is not installed: {_DATABASE_KINDS}") from None
        return url

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
        """No tokens and no token issuers configured: every request is allowed (only permitted on loopback)."""
        return not self.tokens and not self.jwt_issuers

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def sqlite_path(self) -> Path | None:
        """The SQLite file of ``database_url``, or None for another database or an in-memory one."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None


_DATABASE_KINDS = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"


class SettingsError(ValueError):
    """Settings the server refuses to start with."""


def check_startable(settings: Settings) -> None:
    """No tokens is allowed only on a loopback address (anyone who can connect could read patient data);
    several workers only on PostgreSQL."""
    if settings.open_access and not settings.loopback:
        raise SettingsError(
            f"refusing to serve on {settings.host} without bearer tokens: set ESCAPE_FHIR_TOKENS, "
            "or bind to 127.0.0.1 for local use"
        )
    if settings.workers > 1 and not settings.database_url.startswith("postgresql"):
        raise SettingsError(
            f"--workers {settings.workers} needs PostgreSQL (ESCAPE_FHIR_DATABASE_URL=postgresql+psycopg://...): "
            "on SQLite one server process is the fastest (its writers take turns in the process)"
        )
