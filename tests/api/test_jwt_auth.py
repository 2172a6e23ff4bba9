"""The receiver accepts JWT access tokens of a configured issuer (ESCAPE_FHIR_JWT_ISSUERS) beside its static
tokens: signature, ``iss``, ``aud`` and ``exp`` are checked; anything else is 401 with an OperationOutcome."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from escape_fhir.errors import ReceiverRejected
from escape_fhir.settings import Settings
from escape_fhir.transport import Client, SenderIdentity, SignedJwtTokenProvider
from tests.api.conftest import MakeClient, Server, example, message_headers
from tests.transport.token_server import TokenServer, new_key_pair

AUDIENCE = "https://escape.test/FHIR/R4"
STATIC = "s" * 12 + "-static-submitter-0123"


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenServer]:
    with TokenServer(audience=AUDIENCE, scope="submit read") as server:
        yield server


def issuer_settings(server: TokenServer, **overrides: Any) -> dict[str, Any]:
    config = {"issuer": server.issuer, "public_key": server.public_key_pem, "audience": AUDIENCE}
    config["scopes"] = ["submit", "read"]
    return {**config, **overrides}


@pytest.fixture
def secured(make_client: MakeClient, issuer: TokenServer):  # type: ignore[no-untyped-def]
    return make_client(tokens={STATIC: ["submit"]}, jwt_issuers=[issuer_settings(issuer)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_from_the_issuers_endpoint_is_accepted(secured, issuer: TokenServer) -> None:  # type: ignore[no-untyped-def]
    keys = new_key_pair()
    issuer.register("api-key-receiver-test", "k1", keys.public_pem)
    token = SignedJwtTokenProvider(issuer.token_url, "api-key-receiver-test", keys.private_pem, "k1").token()
    posted = secured.post(
        "/$process-message", content=example("knee-gp"), headers={**message_headers(), **bearer(token)}
    )
    assert posted.status_code == 200
    assert secured.get("/Task", headers=bearer(token)).status_code == 200
    assert secured.get("/Task", headers=bearer(STATIC)).status_code == 403  # static tokens keep their scopes


def signed_by_another_key(issuer: str) -> str:
    claims = {"iss": issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60}
    return jwt.encode(claims, new_key_pair().private_pem, algorithm="RS512")


def unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda s: s.access_token(exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda s: s.access_token(exp=None), id="no-exp"),
        pytest.param(lambda s: s.access_token(aud="https://other.test"), id="wrong-audience"),
        pytest.param(lambda s: s.access_token(iss="https://elsewhere.test"), id="wrong-issuer"),
        pytest.param(lambda s: signed_by_another_key(s.issuer), id="wrong-key"),
        pytest.param(
            lambda s: unsigned({"iss": s.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60}), id="unsigned"
        ),
        pytest.param(
            lambda s: jwt.encode(
                {"iss": s.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60},
                "an-hmac-secret-" * 3,
                algorithm="HS256",
            ),
            id="hmac",
        ),
        pytest.param(lambda s: "not.a.jwt", id="garbage"),
    ],
)
def test_invalid_tokens_are_401_with_an_operation_outcome(secured, issuer: TokenServer, make_token: Any) -> None:  # type: ignore[no-untyped-def]
    answer = secured.get("/Task", headers=bearer(make_token(issuer)))
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "REC_UNAUTHORIZED"


def test_the_tokens_scope_claim_narrows_the_issuers_scopes(secured, issuer: TokenServer) -> None:  # type: ignore[no-untyped-def]
    token = issuer.access_token(scope="read")
    assert secured.get("/Task", headers=bearer(token)).status_code == 200
    posted = secured.post(
        "/$process-message", content=example("knee-gp"), headers={**message_headers(), **bearer(token)}
    )
    assert posted.status_code == 403


def test_issuer_settings_take_a_key_file_and_refuse_what_cannot_verify(tmp_path: Path, issuer: TokenServer) -> None:
    pem = tmp_path / "issuer.pem"
    pem.write_text(issuer.public_key_pem)
    settings = Settings(jwt_issuers=[issuer_settings(issuer, public_key=str(pem))])
    assert settings.jwt_issuers[0].public_key == issuer.public_key_pem and not settings.open_access
    with pytest.raises(ValueError, match="not a PEM public key"):
        Settings(jwt_issuers=[issuer_settings(issuer, public_key="-----BEGIN PUBLIC KEY-----\nxx\n")])
    with pytest.raises(ValueError, match="cannot read the public key file"):
        Settings(jwt_issuers=[issuer_settings(issuer, public_key=str(tmp_path / "missing.pem"))])
    with pytest.raises(ValueError, match="algorithms must be among"):
        Settings(jwt_issuers=[issuer_settings(issuer, algorithms=["HS256"])])
    with pytest.raises(ValueError, match="at least 1"):
        Settings(jwt_issuers=[issuer_settings(issuer, scopes=[])])


def test_a_real_server_takes_a_message_with_a_token_of_the_platform_kind(tmp_path: Path, issuer: TokenServer) -> None:
    """End to end: escape-fhir serve configured by ESCAPE_FHIR_JWT_ISSUERS, the client signing its JWT for the
    token endpoint, the token endpoint issuing the access token the server verifies (nhs-standards.md 6.1)."""
    keys = new_key_pair()
    issuer.register("api-key-end-to-end", "k-e2e", keys.public_pem)
    env = {"ESCAPE_FHIR_JWT_ISSUERS": json.dumps([issuer_settings(issuer, scopes=["submit"])])}
    server = Server(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "server.log", env).wait()
    sender = SenderIdentity("A1001", "Riverside Surgery")
    try:
        tokens = SignedJwtTokenProvider(issuer.token_url, "api-key-end-to-end", keys.private_pem, "k-e2e")
        with Client(server.url, sender=sender, token_provider=tokens) as client:
            delivery = client.send_message(json.loads(example("back-self-low")))
        with pytest.raises(ReceiverRejected) as caught, Client(server.url, sender=sender) as anonymous:
            anonymous.send_message(json.loads(example("back-physio-medium")))
    finally:
        server.stop()
    assert delivery.status == 200 and not delivery.duplicate
    assert caught.value.status == 401 and caught.value.attempts == 1
