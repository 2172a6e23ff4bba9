"""Exactly once across failures (issue 5, item 3): a sender with its outbox and a real receiver
(``escape-fhir serve``) on loopback. Each scenario asserts that every referral arrived exactly once (the
receiver holds one ServiceRequest per referral identifier, no more) and none is lost (every message
delivered). How: the outbox sends at least once with a fixed X-Request-ID, and the receiver is idempotent
(409 ``duplicate`` on a repeat, nhs-standards.md 1.2; the same Bundle id is never processed twice)."""

from __future__ import annotations

import signal
from collections.abc import Callable

from tests.api.conftest import free_port
from tests.transport.outbox_fixtures import (  # noqa: F401 - fixtures
    Peer,
    Sender,
    ServerOn,
    deliver_all,
    peer,
    receiver,
    referral_message,
    sender,
    until,
)

EXAMPLES = ("knee-gp", "back-physio-medium", "hip-msk-triage")


def each_once(server: ServerOn, identifiers: list[str]) -> None:
    assert [server.count(i) for i in identifiers] == [1] * len(identifiers)
    assert server.count() == len(identifiers)


def test_receiver_down_then_up(sender: Sender, receiver: Callable[..., ServerOn]) -> None:  # noqa: F811
    port = free_port()
    identifiers = []
    for name in EXAMPLES:
        data, identifier = referral_message(name)
        sender.enqueue(data, f"http://127.0.0.1:{port}")
        identifiers.append(identifier)
    runner = sender.runner()
    assert runner.run_once().retrying == len(EXAMPLES)  # nothing listens: every attempt fails, none is lost
    assert {m.state for m in sender.messages()} == {"pending"}
    server = receiver(port)
    deliver_all(sender, runner)
    assert {(m.state, m.last_status) for m in sender.messages()} == {("delivered", 200)}
    assert all(m.receiver_reference and m.receiver_reference.startswith("ESCAPE-") for m in sender.messages())
    each_once(server, identifiers)


def test_503_then_429_with_retry_after(
    sender: Sender,  # noqa: F811
    receiver: Callable[..., ServerOn],  # noqa: F811
    peer: Peer,  # noqa: F811
) -> None:
    server = receiver()
    peer.upstream = server.url
    peer.actions = [(503, None), (429, 1), "forward"]
    data, identifier = referral_message()
    message_id = sender.enqueue(data, peer.url)
    runner = sender.runner()
    until(lambda: runner.run_once() is not None and sender.messages()[0].attempts == 2)  # 503, then 429
    (message,) = sender.messages()
    assert (message.state, message.last_status, message.attempts) == ("pending", 429, 2)
    assert (message.next_attempt - message.updated).total_seconds() >= 1  # Retry-After honoured
    deliver_all(sender, runner)
    (message,) = sender.messages()
    assert (message.id, message.state, message.last_status, message.attempts) == (message_id, "delivered", 200, 3)
    assert len({request_id for request_id, _ in peer.seen}) == 1  # one X-Request-ID for every attempt
    each_once(server, [identifier])


def test_connection_cut_after_the_receiver_committed(
    sender: Sender,  # noqa: F811
    receiver: Callable[..., ServerOn],  # noqa: F811
    peer: Peer,  # noqa: F811
) -> None:
    server = receiver()
    peer.upstream = server.url
    peer.actions = ["cut"]
    data, identifier = referral_message()
    sender.enqueue(data, peer.url)
    runner = sender.runner()
    runner.run_once()
    (message,) = sender.messages()
    assert message.state == "pending" and message.last_status is None  # the sender never saw the answer
    assert server.count(identifier) == 1  # ... but the receiver has the referral
    deliver_all(sender, runner)
    (message,) = sender.messages()
    assert (message.state, message.last_status) == ("delivered", 409)  # the repeat is a duplicate: delivered
    assert [a for _, a in peer.seen] == ["cut", "forward"] and len({r for r, _ in peer.seen}) == 1
    each_once(server, [identifier])


def test_runner_killed_mid_delivery_and_restarted(
    sender: Sender,  # noqa: F811
    receiver: Callable[..., ServerOn],  # noqa: F811
    peer: Peer,  # noqa: F811
) -> None:
    server = receiver()
    peer.upstream = server.url
    peer.actions = ["hold"]
    data, identifier = referral_message()
    other, other_identifier = referral_message("back-self-low")
    sender.enqueue(data, peer.url)
    first = sender.spawn_runner()
    assert peer.holding.wait(30), "the runner did not send"
    assert server.count(identifier) == 1  # the receiver committed; the answer is held by the peer
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    (message,) = sender.messages()
    assert (message.state, message.attempts) == ("sending", 1)  # claimed by a dead runner until its lease ends
    sender.enqueue(other, server.url)
    sender.spawn_runner()
    until(lambda: all(m.state == "delivered" for m in sender.messages()))
    held, queued_later = sender.messages()
    assert (held.last_status, held.attempts) == (409, 2)  # the lease expired, resent with the same X-Request-ID
    assert queued_later.last_status == 200
    assert len({r for r, _ in peer.seen}) == 1
    each_once(server, [identifier, other_identifier])
