"""The sending side's settings: ``ESCAPE_FHIR_CLIENT_*`` variables or a JSON file (``send --auth-config``).

Separate from the server's :class:`escape_fhir.settings.Settings`: a sender need not run a server.

* NHS API platform signed JWT (nhs-standards.md 6.1): ``TOKEN_URL``, ``API_KEY``, ``KID`` and ``PRIVATE_KEY``
  (PEM text or the path of a PEM file);
* or a static bearer token: ``BEARER_TOKEN`` (e.g. one of a receiving escape-fhir's ``ESCAPE_FHIR_TOKENS``);
* or neither: no ``Authorization`` header (a receiver running open on loopback);
* who sends: ``ODS_CODE``, ``ORG_NAME``, and the default receiver's DoS service id ``TARGET_SERVICE_ID``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from escape_fhir.errors import InputError
from escape_fhir.transport.auth import SignedJwtTokenProvider, StaticTokenProvider, TokenProvider
from escape_fhir.transport.headers import SenderIdentity

__all__ = ["ClientSettings", "load_client_settings"]

_JWT_FIELDS = ("token_url", "api_key", "kid", "private_key")


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCAPE_FHIR_CLIENT_", extra="forbid")

    token_url: str = ""
    api_key: str = ""
    kid: str = ""
    #: PEM text or the path of a PEM file; never logged or echoed.
    private_key: str = Field("", repr=False)
    bearer_token: str = Field("", repr=False)
    ods_code: str = ""
    org_name: str = ""
    target_service_id: str = ""
    timeout: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _one_auth(self) -> ClientSettings:
        given = [name for name in _JWT_FIELDS if getattr(self, name)]
        if given and len(given) != len(_JWT_FIELDS):
            missing = ", ".join(n for n in _JWT_FIELDS if n not in given)
            raise ValueError(f"signed-JWT authentication needs {', '.join(_JWT_FIELDS)}; missing: {missing}")
        if given and self.bearer_token:
            raise ValueError("give either signed-JWT settings or bearer_token, not both")
        return self

    def token_provider(self) -> TokenProvider | None:
        if self.bearer_token:
            return StaticTokenProvider(self.bearer_token)
        if not self.token_url:
            return None
        pem = self.private_key
        if not pem.lstrip().startswith("-----BEGIN"):
            try:
                pem = Path(pem).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read the private key file {self.private_key}: {exc}") from None
        return SignedJwtTokenProvider(self.token_url, self.api_key, pem, self.kid, timeout=self.timeout)

    def sender(self, **overrides: str) -> SenderIdentity:
        """The sender; ``overrides`` (e.g. ``ods_code`` from the command line) win over the settings."""
        given = {k: v for k, v in overrides.items() if v}
        ods = given.get("ods_code", self.ods_code)
        if not ods:
            raise InputError("the sender's ODS code is required (--ods or ESCAPE_FHIR_CLIENT_ODS_CODE)")
        return SenderIdentity(
            ods_code=ods,
            org_name=given.get("org_name", self.org_name) or ods,
            target_service_id=given.get("target_service_id", self.target_service_id),
        )


def load_client_settings(path: str | None = None) -> ClientSettings:
    """Settings from the environment, overridden by the JSON object in ``path``; InputError when unusable
    (the message names the fields, never their values: they may hold a key or a token)."""
    values: dict[str, Any] = {}
    if path:
        try:
            values = orjson.loads(Path(path).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InputError(f"cannot read the client settings {path}: {exc}") from None
        if not isinstance(values, dict):
            raise InputError(f"the client settings {path} must be a JSON object")
    try:
        return ClientSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"client settings: {problems}") from None
