"""The outbound client against a real escape-fhir server and a scripted loopback receiver (nhs-standards.md 1.2).

Waits are recorded by an injected ``sleep`` instead of being waited; ``rand`` is fixed so backoff is exact.
"""

from __future__ import annotations

import email.utils
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from escape_fhir.errors import ReceiverRejected, ReceiverUnavailable
from escape_fhir.fhir.formats import parse
from escape_fhir.transport import Client, RetryPolicy, SenderIdentity, StaticTokenProvider
from escape_fhir.transport.headers import decode_b64_json, use_context
from tests.api.conftest import Server, example, free_port
from tests.transport.peer import Reply, ScriptedPeer, outcome

SENDER = SenderIdentity(ods_code="A1001", org_name="Riverside Surgery", target_service_id="2000011147")
NOW = 1_800_000_000.0


def bundle(name: str = "knee-gp") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(example(name))
    return loaded


class Sleeps(list[float]):
    """An injected sleep: records each wait, waits for nothing."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(sleeps: Sleeps, **overrides: Any) -> RetryPolicy:
    given: dict[str, Any] = {"max_attempts": 5, "base_delay": 1.0, "max_delay": 60.0, "jitter": 0.5}
    given.update({"rand": lambda: 0.0, "clock": lambda: NOW})
    given.update(overrides)
    return RetryPolicy(sleep=sleeps, **given)


def send(url: str, sleeps: Sleeps | None = None, **kwargs: Any) -> Any:
    client = Client(url, sender=SENDER, retry=policy(sleeps if sleeps is not None else Sleeps()), **kwargs)
    with client:
        return client.send_message(bundle(), correlation_id="conv-1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("receiver")
    running = Server(f"sqlite:///{folder / 'db.sqlite3'}", folder / "server.log").wait()
    yield running
    running.stop()


# -- a real escape-fhir receiver -------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("json", "knee-gp"), ("xml", "hip-msk-triage")])
def test_delivers_to_a_real_receiver_and_a_resend_is_a_duplicate(server: Server, fmt: str, name: str) -> None:
    message = bundle(name)  # one referral per case: the receiver refuses a second message of the same referral
    with Client(server.url, sender=SENDER, fmt=fmt, session=requests.Session()) as client:
        first = client.send_message(message, correlation_id="conv-real")
        again = client.send_message(message, request_id=first.request_id, correlation_id="conv-real")
    assert (first.status, first.attempts, first.duplicate) == (200, 1, False)
    assert first.body is not None and first.body["resourceType"] == "Bundle"
    planned = [e["resource"] for e in first.body["entry"] if e["resource"].get("status") == "planned"]
    assert planned and planned[0]["identifier"][0]["value"].startswith("ESCAPE-")
    assert first.headers["x-correlation-id"] == "conv-real"
    assert first.headers["content-type"].startswith(f"application/fhir+{fmt}")
    assert (again.status, again.duplicate, again.request_id) == (409, True, first.request_id)
    assert again.body is not None and again.body["issue"][0]["code"] == "duplicate"


def test_a_real_receivers_refusal_carries_its_operation_outcome(server: Server) -> None:
    message = bundle()
    message["type"] = "collection"
    with pytest.raises(ReceiverRejected) as caught, Client(server.url, sender=SENDER) as client:
        client.send_message(message)
    error = caught.value
    assert error.status == 400 and error.attempts == 1 and error.request_id
    assert error.outcome is not None
    assert error.outcome["issue"][0]["details"]["coding"][0]["code"] == "REC_BAD_REQUEST"
    assert error.headers["x-request-id"] == error.request_id
    assert "REC_BAD_REQUEST" in str(error)


# -- headers ----------------------------------------------------------------------------------------------


def test_bars_headers_are_sent_base64_json_as_nhs_standards_1_2_says() -> None:
    with ScriptedPeer([Reply(200, {"resourceType": "Bundle"})]) as peer:
        delivery = send(peer.url, token_provider=StaticTokenProvider("static-token-of-the-receiver-0123"))
    got = peer.received[0]
    assert got.path == "/$process-message"
    assert got.headers["content-type"] == "application/fhir+json"
    assert got.headers["accept"] == "application/fhir+json; version=1.4.0"
    assert got.headers["x-request-id"] == delivery.request_id and uuid.UUID(delivery.request_id)
    assert got.headers["x-correlation-id"] == "conv-1"
    assert got.headers["authorization"] == "Bearer static-token-of-the-receiver-0123"
    assert decode_b64_json(got.headers["nhsd-target-identifier"]) == {
        "value": "2000011147",
        "system": "https://fhir.nhs.uk/Id/dos-service-id",
    }
    assert decode_b64_json(got.headers["nhsd-end-user-organisation"]) == {
        "resourceType": "Organization",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A1001"}],
        "name": "Riverside Surgery",
    }
    software = decode_b64_json(got.headers["nhsd-requesting-software"])
    assert software["resourceType"] == "Device" and software["identifier"][0]["value"] == "escape-fhir"
    assert software["deviceName"] == [{"name": "escape-fhir", "type": "manufacturer-name"}]
    assert software["version"][0]["value"]
    assert json.loads(got.body) == bundle()
    assert "use-context" not in got.headers  # ESCAPE-pain has no BaRS use-case code (nhs-standards.md 9.5)


def test_xml_is_sent_and_accepted_as_xml() -> None:
    with ScriptedPeer([Reply(200, {"resourceType": "Bundle"})]) as peer:
        send(peer.url, fmt="xml")
    got = peer.received[0]
    assert got.headers["content-type"] == "application/fhir+xml"
    assert got.headers["accept"] == "application/fhir+xml; version=1.4.0"
    assert got.body.lstrip().startswith(b"<") and parse(got.body, "xml") == bundle()


def test_use_context_is_built_from_the_bundle_when_it_has_every_part() -> None:
    message = bundle()
    request = next(e["resource"] for e in message["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    request["category"] = [
        {
            "coding": [
                {"system": "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest", "code": "referral"},
                {"system": "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars", "code": "a7t1"},
            ]
        }
    ]
    assert use_context(message) == "a7t1|referral|servicerequest-request|new"


# -- retries ----------------------------------------------------------------------------------------------


def test_503_429_408_are_retried_with_backoff_honouring_retry_after_and_one_request_id() -> None:
    script = [
        Reply(503, outcome("transient", "REC_SERVICE_UNAVAILABLE")),
        Reply(429, outcome("throttled", "REC_TOO_MANY_REQUESTS"), {"Retry-After": "7"}),
        Reply(408, outcome("timeout", "REC_REQUEST_TIMEOUT")),
        Reply(200, {"resourceType": "Bundle"}),
    ]
    sleeps = Sleeps()
    with ScriptedPeer(script) as peer:
        delivery = send(peer.url, sleeps)
    assert (delivery.status, delivery.attempts, delivery.duplicate) == (200, 4, False)
    assert {r.headers["x-request-id"] for r in peer.received} == {delivery.request_id}
    assert sleeps == [1.0, 7.0, 4.0]  # 1 s, then Retry-After 7 s over the 2 s backoff, then 4 s


def test_retry_after_as_an_http_date_and_jitter_shortening_the_backoff() -> None:
    date = email.utils.formatdate(NOW + 20, usegmt=True)
    script = [Reply(503, outcome("transient", "X"), {"Retry-After": date}), Reply(503, outcome("transient", "X"))]
    script.append(Reply(200, {"resourceType": "Bundle"}))
    sleeps = Sleeps()
    with ScriptedPeer(script) as peer:
        client = Client(peer.url, sender=SENDER, retry=policy(sleeps, rand=lambda: 1.0))
        client.send_message(bundle())
    assert sleeps == [20.0, 1.0]  # the date is 20 s ahead; the 2 s backoff less its full 50 % jitter


def test_a_retry_after_longer_than_max_delay_stops_with_it_for_the_outbox() -> None:
    sleeps = Sleeps()
    with (
        ScriptedPeer([Reply(429, outcome("throttled", "X"), {"Retry-After": "120"})]) as peer,
        pytest.raises(ReceiverUnavailable) as caught,
    ):
        send(peer.url, sleeps)
    assert (caught.value.retry_after, caught.value.status, caught.value.attempts) == (120.0, 429, 1)
    assert sleeps == []


def test_unavailable_after_the_last_attempt_carries_the_last_outcome() -> None:
    sleeps = Sleeps()
    with (
        ScriptedPeer([Reply(503, outcome("transient", "REC_SERVICE_UNAVAILABLE", "down for upgrade"))]) as peer,
        pytest.raises(ReceiverUnavailable) as caught,
    ):
        send(peer.url, sleeps)
    error = caught.value
    assert (error.status, error.attempts, len(peer.received)) == (503, 5, 5)
    assert error.outcome is not None and error.outcome["issue"][0]["diagnostics"] == "down for upgrade"
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert len({r.headers["x-request-id"] for r in peer.received}) == 1


def test_backoff_is_capped_by_max_delay() -> None:
    assert [RetryPolicy(base_delay=1, max_delay=5, rand=lambda: 0.0).backoff(n) for n in range(1, 6)] == [
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
    ]


@pytest.mark.parametrize(
    ("status", "code", "bars"),
    [
        pytest.param(400, "invalid", "REC_BAD_REQUEST", id="400"),
        pytest.param(403, "forbidden", "REC_FORBIDDEN", id="403"),
        pytest.param(409, "conflict", "REC_CONFLICT", id="409-not-duplicate"),
        pytest.param(422, "business-rule", "REC_UNPROCESSABLE_ENTITY", id="422"),
        pytest.param(500, "exception", "REC_SERVER_ERROR", id="500-with-outcome"),
    ],
)
def test_final_refusals_are_not_retried_and_carry_the_outcome(status: int, code: str, bars: str) -> None:
    sleeps = Sleeps()
    with (
        ScriptedPeer([Reply(status, outcome(code, bars)), Reply(200, {"resourceType": "Bundle"})]) as peer,
        pytest.raises(ReceiverRejected) as caught,
    ):
        send(peer.url, sleeps)
    error = caught.value
    assert (error.status, error.attempts, len(peer.received), sleeps) == (status, 1, 1, [])
    assert error.outcome == outcome(code, bars)
    assert error.headers["x-correlation-id"] == "conv-1"


def test_a_4xx_without_an_outcome_is_still_final() -> None:
    with ScriptedPeer([Reply(404, raw=b"<html>not here</html>")]) as peer, pytest.raises(ReceiverRejected) as caught:
        send(peer.url)
    assert (caught.value.status, caught.value.outcome, len(peer.received)) == (404, None, 1)


def test_409_duplicate_counts_as_delivered() -> None:
    with ScriptedPeer([Reply(409, outcome("duplicate", "REC_CONFLICT"))]) as peer:
        delivery = send(peer.url)
    assert (delivery.status, delivery.duplicate, delivery.attempts) == (409, True, 1)


def test_comms_failures_are_retried_then_the_duplicate_answer_is_delivery() -> None:
    """A gateway's page with no OperationOutcome, then a 200 without the echoed ids, then 409 duplicate: the
    receiver had the message all along, and it is delivered once (nhs-standards.md 1.2)."""
    script = [
        Reply(502, raw=b"<html>Bad gateway</html>"),
        Reply(200, {"resourceType": "Bundle"}, echo=False),
        Reply(409, outcome("duplicate", "REC_CONFLICT")),
    ]
    sleeps = Sleeps()
    with ScriptedPeer(script) as peer:
        delivery = send(peer.url, sleeps)
    assert (delivery.status, delivery.duplicate, delivery.attempts) == (409, True, 3)
    assert sleeps == [1.0, 2.0]


def test_connection_failures_are_retried_until_the_receiver_answers() -> None:
    port = free_port()
    peers: list[ScriptedPeer] = []

    def start_receiver_while_waiting(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            peers.append(ScriptedPeer([Reply(200, {"resourceType": "Bundle"})], port=port).__enter__())

    sleeps = Sleeps()
    retry = RetryPolicy(sleep=start_receiver_while_waiting, rand=lambda: 0.0, base_delay=0.5)
    try:
        with Client(f"http://127.0.0.1:{port}/", sender=SENDER, retry=retry, timeout=5) as client:
            delivery = client.send_message(bundle())
    finally:
        for peer in peers:
            peer.__exit__(None, None, None)
    assert (delivery.status, delivery.attempts, sleeps) == (200, 3, [0.5, 1.0])
    assert peers[0].received[0].headers["x-request-id"] == delivery.request_id


class CountingTokens:
    """A token provider handing out token-1, token-2, ... and counting invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidated = 0

    def token(self) -> str:
        if self.issued == self.invalidated:
            self.issued += 1
        return f"token-{self.issued}"

    def invalidate(self) -> None:
        self.invalidated += 1


def test_a_401_refreshes_the_token_once() -> None:
    tokens = CountingTokens()
    script = [Reply(401, outcome("login", "REC_UNAUTHORIZED")), Reply(200, {"resourceType": "Bundle"})]
    with ScriptedPeer(script) as peer:
        delivery = send(peer.url, token_provider=tokens)
    assert delivery.attempts == 2 and tokens.invalidated == 1
    assert [r.headers["authorization"] for r in peer.received] == ["Bearer token-1", "Bearer token-2"]
    with (
        ScriptedPeer([Reply(401, outcome("login", "REC_UNAUTHORIZED"))]) as peer,
        pytest.raises(ReceiverRejected) as caught,
    ):
        send(peer.url, token_provider=CountingTokens())
    assert (caught.value.status, len(peer.received)) == (401, 2)


def test_bad_urls_and_formats_are_input_errors() -> None:
    from escape_fhir.errors import InputError

    with pytest.raises(InputError, match="http"):
        Client("ftp://example.org", sender=SENDER)
    with pytest.raises(InputError, match="json or xml"):
        Client("http://127.0.0.1:1", sender=SENDER, fmt="yaml")
    assert Client("http://h/fhir/$process-message", sender=SENDER).url == "http://h/fhir/$process-message"
    assert Client("http://h/fhir/", sender=SENDER).url == "http://h/fhir/$process-message"
