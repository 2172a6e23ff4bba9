"""NHS API platform signed-JWT authentication (nhs-standards.md 6.1) against a real token endpoint on loopback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from escape_fhir.errors import AuthError, InputError
from escape_fhir.transport import Client, SenderIdentity, SignedJwtTokenProvider
from escape_fhir.transport.auth import CLIENT_ASSERTION_TYPE
from tests.api.conftest import free_port
from tests.transport.peer import Reply, ScriptedPeer
from tests.transport.token_server import KeyPair, TokenServer, new_key_pair

API_KEY = "api-key-" + "7" * 24
KID = "escape-test-1"
AUDIENCE = "https://escape.test/FHIR/R4"


class Clock:
    """A clock shared by the provider and the token server: real time plus an offset the tests move.

    It keeps running, so a slow moment of the machine between building the fixtures and a request (RSA key
    generation on a loaded CI runner) cannot put the provider's real clock ahead of a frozen server clock.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    @property
    def now(self) -> float:
        return time.time() + self.offset

    @now.setter
    def now(self, value: float) -> None:
        self.offset = value - time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def client_keys() -> KeyPair:
    return new_key_pair()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def token_server(client_keys: KeyPair, clock: Clock) -> Iterator[TokenServer]:
    with TokenServer(audience=AUDIENCE, expires_in=600, clock=clock) as server:
        server.register(API_KEY, KID, client_keys.public_pem)
        yield server


def provider(server: TokenServer, keys: KeyPair, **kwargs: Any) -> SignedJwtTokenProvider:
    return SignedJwtTokenProvider(server.token_url, API_KEY, keys.private_pem, KID, **kwargs)


def test_the_client_assertion_has_the_platforms_claims(token_server: TokenServer, client_keys: KeyPair) -> None:
    assertion = provider(token_server, client_keys).client_assertion()
    header = jwt.get_unverified_header(assertion)
    assert (header["alg"], header["kid"]) == ("RS512", KID)
    claims = jwt.decode(assertion, client_keys.public_pem, algorithms=["RS512"], audience=token_server.token_url)
    assert claims["iss"] == claims["sub"] == API_KEY
    assert claims["aud"] == token_server.token_url
    assert uuid.UUID(claims["jti"])
    assert 0 < claims["exp"] - time.time() <= 300


def test_the_token_is_an_access_token_the_issuer_signed(token_server: TokenServer, client_keys: KeyPair) -> None:
    token = provider(token_server, client_keys).token()
    claims = jwt.decode(token, token_server.public_key_pem, algorithms=["RS512"], audience=AUDIENCE)
    assert claims["iss"] == token_server.issuer and claims["sub"] == API_KEY


def test_the_token_is_cached_until_shortly_before_it_expires(
    token_server: TokenServer, client_keys: KeyPair, clock: Clock
) -> None:
    tokens = provider(token_server, client_keys, clock=clock, margin=30)
    first = {tokens.token() for _ in range(3)}
    clock.now += 569  # 600 s tokens, 30 s margin: still good
    first.add(tokens.token())
    assert len(first) == 1 and token_server.issued == 1
    clock.now += 2
    assert tokens.token() not in first and token_server.issued == 2
    tokens.invalidate()
    tokens.token()
    assert token_server.issued == 3


def test_several_sends_use_one_token(token_server: TokenServer, client_keys: KeyPair) -> None:
    tokens = provider(token_server, client_keys, session=requests.Session())
    sender = SenderIdentity("A1001", "Riverside Surgery")
    with (
        ScriptedPeer([Reply(200, {"resourceType": "Bundle"})]) as peer,
        Client(peer.url, sender=sender, token_provider=tokens) as client,
    ):
        for _ in range(3):
            client.send_message({"resourceType": "Bundle", "type": "message"})
    assert token_server.issued == 1
    presented = {r.headers["authorization"] for r in peer.received}
    assert len(presented) == 1
    token = presented.pop().removeprefix("Bearer ")
    assert jwt.decode(token, token_server.public_key_pem, algorithms=["RS512"], audience=AUDIENCE)


def refusal(call: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        call()
    return caught.value


def test_a_wrong_key_is_refused(token_server: TokenServer) -> None:
    error = refusal(provider(token_server, new_key_pair()).token)
    assert (error.status, error.error, error.transient) == (401, "invalid_client", False)
    assert "InvalidSignatureError" in token_server.refusals[-1]


def test_an_expired_assertion_is_refused(token_server: TokenServer, client_keys: KeyPair, clock: Clock) -> None:
    error = refusal(provider(token_server, client_keys, clock=lambda: clock.now - 600).token)
    assert error.status == 401 and token_server.refusals == ["exp is in the past"]


def test_an_assertion_beyond_5_minutes_is_refused(
    token_server: TokenServer, client_keys: KeyPair, clock: Clock
) -> None:
    error = refusal(provider(token_server, client_keys, clock=lambda: clock.now + 120).token)
    assert error.status == 401 and token_server.refusals == ["exp is more than 5 minutes in the future"]


def post_assertion(server: TokenServer, assertion: str) -> requests.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE}
    return requests.post(server.token_url, data={**form, "client_assertion": assertion}, timeout=5)


def test_a_wrong_audience_is_refused(token_server: TokenServer, client_keys: KeyPair) -> None:
    claims = {"iss": API_KEY, "sub": API_KEY, "jti": str(uuid.uuid4()), "exp": int(time.time()) + 60}
    claims["aud"] = "https://int.api.service.nhs.uk/oauth2/token"
    assertion = jwt.encode(claims, client_keys.private_pem, algorithm="RS512", headers={"kid": KID})
    answer = post_assertion(token_server, assertion)
    assert answer.status_code == 401 and answer.json()["error_description"] == "aud must be the token URL"


def test_a_reused_jti_is_refused(token_server: TokenServer, client_keys: KeyPair) -> None:
    assertion = provider(token_server, client_keys).client_assertion()
    assert post_assertion(token_server, assertion).status_code == 200
    again = post_assertion(token_server, assertion)
    assert again.status_code == 401 and again.json()["error_description"] == "jti has already been used"


def test_iss_other_than_sub_and_an_unknown_kid_are_refused(token_server: TokenServer, client_keys: KeyPair) -> None:
    claims = {"iss": API_KEY, "sub": "someone-else", "jti": str(uuid.uuid4()), "exp": int(time.time()) + 60}
    claims["aud"] = token_server.token_url
    assertion = jwt.encode(claims, client_keys.private_pem, algorithm="RS512", headers={"kid": KID})
    assert post_assertion(token_server, assertion).json()["error_description"] == "sub must equal iss (the API key)"
    unknown = SignedJwtTokenProvider(token_server.token_url, API_KEY, client_keys.private_pem, "other-kid")
    assert refusal(unknown.token).error == "invalid_client"


def test_an_unreachable_token_endpoint_is_a_transient_auth_error(client_keys: KeyPair) -> None:
    url = f"http://127.0.0.1:{free_port()}/oauth2/token"
    error = refusal(SignedJwtTokenProvider(url, API_KEY, client_keys.private_pem, KID, timeout=2).token)
    assert error.status is None and error.transient


def test_keys_that_cannot_sign_are_input_errors(token_server: TokenServer) -> None:
    with pytest.raises(InputError, match="PEM private key"):
        SignedJwtTokenProvider(token_server.token_url, API_KEY, "not a key", KID)
    with pytest.raises(InputError, match="lifetime"):
        SignedJwtTokenProvider(token_server.token_url, API_KEY, new_key_pair().private_pem, KID, lifetime=600)
