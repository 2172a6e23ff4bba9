"""Senders never take a refused correction for a delivered message (issue 9, "Corrections are lost").

Against a real escape-fhir receiver on loopback: ``escape-fhir send`` exits 0 for a true duplicate (409
``duplicate``) and 1 for a second ``new`` of a held referral or a reused Bundle id (422); the outbox marks the
first delivered and the others dead, and the ``update`` that follows is delivered and re-assesses the Task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from escape_fhir.cli import main
from escape_fhir.domain import load_referral
from escape_fhir.errors import ReceiverRejected
from escape_fhir.fhir.bundles import translate
from escape_fhir.transport import Client, SenderIdentity
from tests.api.conftest import Server
from tests.helpers import EXAMPLES
from tests.transport.outbox_fixtures import Sender, deliver_all, sender  # noqa: F401 - fixture
from tests.transport.peer import HTTP_ERROR_CODES, Reply, ScriptedPeer

Json = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("receiver")
    running = Server(f"sqlite:///{folder / 'db.sqlite3'}", folder / "server.log").wait()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """No client settings from the developer's environment."""
    for name in ("TOKEN_URL", "API_KEY", "KID", "PRIVATE_KEY", "BEARER_TOKEN", "ODS_CODE", "ORG_NAME"):
        monkeypatch.delenv(f"ESCAPE_FHIR_CLIENT_{name}", raising=False)
    monkeypatch.setenv("ESCAPE_FHIR_CLIENT_MAX_ATTEMPTS", "1")


def messages() -> Callable[..., Json]:
    """A maker of messages of one new referral (its own id): each a second later, so each has its own
    Bundle id (translate derives it from the referral id, reason and timestamp)."""
    referral = json.loads((EXAMPLES / "referrals" / "knee-gp.json").read_bytes())
    referral["id"] = str(uuid.uuid4())
    made = [0]

    def make(reason: str = "new", **eligibility: bool) -> Json:
        made[0] += 1
        changed = {**referral, "eligibility": {**referral["eligibility"], **eligibility}}
        stamp = f"2026-11-20T09:30:{made[0]:02d}Z"
        return translate(load_referral(json.dumps(changed).encode()), "message", reason=reason, timestamp=stamp)

    return make


def write(folder: Path, name: str, bundle: Json) -> str:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(bundle))
    return str(path)


def send(path: str, url: str, *more: str) -> int:
    return main(["send", path, "--to", url, "--ods", "A1001", *more])


def test_send_reports_a_duplicate_as_delivered_and_a_correction_sent_as_new_as_refused(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make = messages()
    first = write(tmp_path, "first", make())
    assert send(first, server.url, "--request-id", "send-1") == 0
    capsys.readouterr()
    assert send(first, server.url, "--request-id", "send-1") == 0
    assert "already delivered (409 duplicate)" in capsys.readouterr().err
    correction = write(tmp_path, "correction", make("new", contraindicationsToExercise=True))
    assert send(correction, server.url) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: the receiver refused the message: HTTP 422: REC_UNPROCESSABLE_ENTITY")
    refusal = json.loads(out)["issue"][0]
    assert refusal["code"] == "business-rule" and "send the changes as an update" in refusal["diagnostics"].lower()
    update = write(tmp_path, "update", make("update", contraindicationsToExercise=True))
    assert send(update, server.url) == 0
    assert "delivered (HTTP 200)" in capsys.readouterr().err


def test_send_reports_a_reused_bundle_id_as_refused(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = messages()()
    assert send(write(tmp_path, "first", sent), server.url) == 0
    sent["entry"][1]["resource"]["priority"] = "urgent"
    capsys.readouterr()
    assert send(write(tmp_path, "changed", sent), server.url) == 1
    out, err = capsys.readouterr()
    assert "HTTP 422" in err and "already delivered" not in err
    assert "Bundle.entry[1].resource.priority" in json.loads(out)["issue"][0]["diagnostics"]


def test_send_reports_a_corrected_file_sent_with_the_same_request_id_as_refused(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """send's advice after exit 3 is to send again with the same --request-id; if the file was corrected
    meanwhile (and the first attempt had in fact arrived), the correction is refused, not "already delivered"."""
    sent = messages()()
    request_id = str(uuid.uuid4())
    assert send(write(tmp_path, "first", sent), server.url, "--request-id", request_id) == 0
    sent["entry"][1]["resource"]["priority"] = "urgent"
    capsys.readouterr()
    assert send(write(tmp_path, "corrected", sent), server.url, "--request-id", request_id) == 1
    out, err = capsys.readouterr()
    assert "HTTP 422" in err and "already delivered" not in err
    assert json.loads(out)["issue"][0]["expression"] == ["Bundle.id"]


def test_the_outbox_marks_the_refused_correction_dead_and_delivers_the_update(
    server: Server,
    sender: Sender,  # noqa: F811
) -> None:
    make = messages()
    first = sender.enqueue(json.dumps(make()).encode(), server.url)
    correction = sender.enqueue(json.dumps(make("new", contraindicationsToExercise=True)).encode(), server.url)
    deliver_all(sender, sender.runner())
    update = sender.enqueue(json.dumps(make("update", contraindicationsToExercise=True)).encode(), server.url)
    deliver_all(sender, sender.runner())
    state = {m.id: m for m in sender.messages()}
    assert (state[first].state, state[first].last_status) == ("delivered", 200)
    assert (state[correction].state, state[correction].last_status, state[correction].attempts) == ("dead", 422, 1)
    assert (
        state[correction].last_error
        == "HTTP 422; REC_UNPROCESSABLE_ENTITY business-rule at Bundle.entry[0].resource.reason"
    )
    assert state[update].state == "delivered"
    reference = state[first].receiver_reference
    task = httpx.get(f"{server.url}/Task", params={"identifier": reference}).json()["entry"][0]["resource"]
    assert task["input"][0]["valueCodeableConcept"]["coding"][0]["code"] == "not-eligible"
    assert "decision eligible -> not-eligible" in task["note"][-1]["text"]


def test_a_409_that_is_not_only_duplicate_is_refused() -> None:
    """A 409 with a ``duplicate`` issue beside another error is no proof that the message was delivered."""
    details = {"coding": [{"system": HTTP_ERROR_CODES, "code": "REC_CONFLICT"}]}
    issues = [
        {"severity": "error", "code": "duplicate", "details": details, "diagnostics": "seen"},
        {"severity": "error", "code": "business-rule", "details": details, "diagnostics": "send an update"},
    ]
    reply = Reply(409, {"resourceType": "OperationOutcome", "issue": issues})
    sender_id = SenderIdentity(ods_code="A1001", org_name="Riverside Surgery")
    with (
        ScriptedPeer([reply]) as peer,
        Client(peer.url, sender=sender_id) as client,
        pytest.raises(ReceiverRejected) as caught,
    ):
        client.send_message(messages()())
    assert caught.value.status == 409
