"""The outbox (issue 5, item 2): queued before any attempt, claimed by one runner at a time, retried by the
BaRS rules (nhs-standards.md 1.2), dead-lettered visibly, re-queued by command; the CLI over it."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from escape_fhir.cli import main
from escape_fhir.service.common import now
from escape_fhir.storage import Database
from escape_fhir.storage.outbox import REQUEST, NewMessage, Outbox
from escape_fhir.transport.outbox import NoRoute, Policy, resolve_route
from tests.api.conftest import pg_url  # noqa: F401 - fixture
from tests.transport.outbox_fixtures import Peer, Sender, peer, referral_message, sender  # noqa: F401 - fixtures

NOW = datetime(2026, 11, 26, 12, 0, 0)
HTTP_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"


def test_enqueue_keeps_our_copy_and_the_message_before_any_attempt(sender: Sender) -> None:  # noqa: F811
    data, _ = referral_message()
    message_id = sender.enqueue(data, "http://127.0.0.1:1")
    (message,) = sender.messages()
    assert (message.id, message.kind, message.state, message.attempts) == (message_id, REQUEST, "pending", 0)
    with sender.db.read() as repo:
        copy = repo.current("ServiceRequest", str(message.service_request_id))
        assert copy is not None and copy.content["status"] == "active"
        assert Outbox(repo.session).get(message_id, with_body=True).body == data  # type: ignore[union-attr]


def test_the_same_message_is_queued_once(sender: Sender, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    data, _ = referral_message()
    path = sender.folder / "message.json"
    path.write_bytes(data)
    args = ["outbox", "enqueue", str(path), "--to", "http://127.0.0.1:1", "--database-url", sender.url]
    assert main(args) == 0
    assert main(args) == 2
    assert "already in the outbox" in capsys.readouterr().err
    assert len(sender.messages()) == 1


def test_a_refusal_is_dead_at_once_and_retry_queues_it_again(
    sender: Sender,  # noqa: F811
    peer: Peer,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, _ = referral_message()
    sender.enqueue(data, peer.url)
    peer.actions = [(422, None), (200, None)]
    runner = sender.runner()
    assert runner.run_once().dead == 1  # never retried: the same message gets the same answer
    (message,) = sender.messages()
    assert (message.state, message.attempts, message.last_status) == ("dead", 1, 422)
    assert message.last_error == "HTTP 422; transient"
    assert main(["outbox", "list", "--state", "dead", "--database-url", sender.url]) == 0
    listed = capsys.readouterr().out
    assert " dead " in listed and message.bundle_id in listed
    assert main(["outbox", "retry", "--dead", "--database-url", sender.url]) == 0
    assert sender.messages()[0].state == "pending"
    assert runner.run_once().delivered == 1
    assert [r for r, _ in peer.seen] == [message.request_id] * 2  # the same X-Request-ID after the retry


def test_dead_after_max_attempts(sender: Sender, peer: Peer) -> None:  # noqa: F811
    data, _ = referral_message()
    sender.enqueue(data, peer.url)
    peer.actions = [(503, None)] * 3
    clock = [now()]
    runner = sender.runner(Policy(max_attempts=3, backoff=1))
    runner.clock = lambda: clock[0]
    for _ in range(3):
        runner.run_once()
        clock[0] += timedelta(seconds=10)
    (message,) = sender.messages()
    assert (message.state, message.attempts, message.last_status) == ("dead", 3, 503)
    assert message.last_error is not None and "gave up after 3 attempts" in message.last_error


def test_list_shows_ids_only(sender: Sender, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    data, _ = referral_message()
    sender.enqueue(data, "http://127.0.0.1:1")
    assert main(["outbox", "list", "--json", "--database-url", sender.url]) == 0
    out = capsys.readouterr().out
    patient = next(e["resource"] for e in json.loads(data)["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["identifier"][0]["value"] not in out and patient["name"][0]["family"] not in out
    assert json.loads(out)[0]["state"] == "pending"


def test_routes() -> None:
    routes = {"https://fhir.nhs.uk/Id/dos-service-id|1": "http://127.0.0.1:9000"}
    assert resolve_route("https://fhir.nhs.uk/Id/dos-service-id|1", routes) == "http://127.0.0.1:9000"
    assert resolve_route("http://127.0.0.1:9001/fhir", routes) == "http://127.0.0.1:9001/fhir"
    with pytest.raises(NoRoute):
        resolve_route("https://fhir.nhs.uk/Id/ods-organization-code|X1", routes)


def test_a_lease_keeps_other_runners_off_until_it_expires(tmp_path: Path) -> None:
    db = queued(f"sqlite:///{tmp_path / 'db.sqlite3'}", 1)
    lease = timedelta(seconds=30)
    with db.write() as repo:
        assert len(Outbox(repo.session).claim("a", NOW, lease, 10)) == 1
    with db.write() as repo:
        assert Outbox(repo.session).claim("b", NOW + timedelta(seconds=29), lease, 10) == []
    with db.write() as repo:
        (taken,) = Outbox(repo.session).claim("b", NOW + timedelta(seconds=31), lease, 10)
        assert (taken.claimed_by, taken.attempts) == ("b", 2)
    with db.write() as repo:  # the first runner, back late, cannot overwrite the second one's work
        assert not Outbox(repo.session).delivered(taken.id, "a", NOW, 200)
        assert Outbox(repo.session).delivered(taken.id, "b", NOW, 200)


def queued(url: str, count: int) -> Database:
    db = Database.from_url(url)
    db.migrate()
    with db.write() as repo:
        for i in range(count):
            # Unrelated messages (each its own conversation), which runners may send in any order.
            Outbox(repo.session).add(NewMessage(REQUEST, "http://x", f"b{i}", f"r{i}", f"c{i}", b"{}", "json"), NOW)
    return db


def claimed_by_two_runners(db: Database) -> tuple[list[int], list[int]]:
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def run(name: str) -> None:
        while True:
            with db.write() as repo:
                batch = Outbox(repo.session).claim(name, NOW, timedelta(minutes=5), 3)
            if not batch:
                return
            taken[name] += [m.id for m in batch]

    threads = [threading.Thread(target=run, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return taken["a"], taken["b"]


def test_two_runners_never_claim_the_same_message_sqlite(tmp_path: Path) -> None:
    a, b = claimed_by_two_runners(queued(f"sqlite:///{tmp_path / 'db.sqlite3'}", 30))
    assert sorted(a + b) == list(range(1, 31))


def test_two_runners_never_claim_the_same_message_postgres(pg_url: str) -> None:  # noqa: F811
    db = queued(pg_url, 30)
    a, b = claimed_by_two_runners(db)
    db.dispose()
    assert sorted(a + b) == list(range(1, 31))


def test_runner_authenticates_with_the_client_settings(
    sender: Sender,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`outbox run` sends with the ESCAPE_FHIR_CLIENT_* credentials; without them a secured receiver refuses."""
    from tests.api.conftest import Server

    token = "f3a9c1d27b8e4f60a5d1c3e9b7f2a4d6"
    receiver = Server(
        f"sqlite:///{tmp_path / 'receiver.sqlite3'}",
        tmp_path / "receiver.log",
        env={"ESCAPE_FHIR_TOKENS": json.dumps({token: ["submit", "read"]})},
    ).wait()
    try:
        refused, _ = referral_message()
        sender.enqueue(refused, receiver.url)
        monkeypatch.delenv("ESCAPE_FHIR_CLIENT_BEARER_TOKEN", raising=False)
        assert main(["outbox", "run", "--once", "--database-url", sender.url]) == 0
        assert "dead 1" in capsys.readouterr().out
        assert sender.messages()[0].last_status == 401

        accepted, identifier = referral_message()
        sender.enqueue(accepted, receiver.url)
        monkeypatch.setenv("ESCAPE_FHIR_CLIENT_BEARER_TOKEN", token)
        assert main(["outbox", "run", "--once", "--database-url", sender.url]) == 0
        assert "delivered 1" in capsys.readouterr().out
        headers = {"Authorization": f"Bearer {token}"}
        found = httpx.get(
            f"{receiver.url}/ServiceRequest",
            params={"identifier": f"https://w3id.org/escape-fhir/Id/referral|{identifier}"},
            headers=headers,
            timeout=10,
        ).json()
        assert found["total"] == 1
    finally:
        receiver.stop()


def test_a_conversation_goes_to_a_destination_in_the_order_it_was_queued(tmp_path: Path) -> None:
    """A referral's cancellation (or update) never overtakes the referral while that waits for a retry."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.migrate()
    lease = timedelta(minutes=5)
    with db.write() as repo:
        outbox = Outbox(repo.session)
        first = outbox.add(NewMessage(REQUEST, "http://site-a", "new", "r1", "conv", b"{}", "json"), NOW)
        second = outbox.add(NewMessage(REQUEST, "http://site-a", "cancel", "r2", "conv", b"{}", "json"), NOW)
        elsewhere = outbox.add(NewMessage(REQUEST, "http://site-b", "other", "r3", "conv", b"{}", "json"), NOW)
    with db.write() as repo:
        taken = [m.id for m in Outbox(repo.session).claim("a", NOW, lease, 10)]
    assert taken == [first, elsewhere]  # the cancellation waits for the referral to site A
    with db.write() as repo:
        retry_at = NOW + timedelta(seconds=30)
        assert Outbox(repo.session).failed(first, "a", NOW, status=503, error="busy", retry_at=retry_at)
    with db.write() as repo:
        outbox = Outbox(repo.session)
        assert outbox.claim("a", NOW + timedelta(seconds=10), lease, 10) == []  # still behind the retry
        assert outbox.next_due() == retry_at  # so the runner sleeps until then rather than spinning
    with db.write() as repo:
        (again,) = Outbox(repo.session).claim("a", retry_at, lease, 10)
        assert again.id == first
        assert Outbox(repo.session).delivered(first, "a", retry_at, 200)
    with db.write() as repo:
        (then,) = Outbox(repo.session).claim("a", retry_at, lease, 10)
        assert then.id == second
        assert Outbox(repo.session).failed(second, "a", retry_at, status=422, error="refused", retry_at=None)
    with db.write() as repo:  # a dead message no longer holds the line
        later = Outbox(repo.session).add(
            NewMessage(REQUEST, "http://site-a", "later", "r4", "conv", b"{}", "json"), NOW
        )
    with db.write() as repo:
        assert [m.id for m in Outbox(repo.session).claim("a", retry_at, lease, 10)] == [later]
