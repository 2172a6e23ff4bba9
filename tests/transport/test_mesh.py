"""MESH transport against mesh-sandbox (nhs-standards.md 6.3), no mocks: messages go through the sandbox's
MESH API with full NHSMESH authentication, and received ones through the ``$process-message`` intake into a
real SQLite database (see tests/transport/mesh_sandbox.py for how the sandbox runs)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from escape_fhir.cli import main
from escape_fhir.errors import MeshError
from escape_fhir.fhir import jsonio
from escape_fhir.service.mesh_intake import MeshIntake
from escape_fhir.settings import Settings, SettingsError
from escape_fhir.storage import Database
from escape_fhir.transport.mesh import Disposition, Handled, InboundMessage, MeshTransport, Received
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from tests.api.conftest import example
from tests.transport.mesh_sandbox import OTHER, PASSWORD, RECEIVER, SENDER, SHARED_KEY, Sandbox, running

WORKFLOW = "ESCAPE_PAIN_REFERRAL"
Json = dict[str, Any]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running(tmp_path_factory.mktemp("mesh-sandbox") / "sandbox.log") as started:
        yield started


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(default_definitions([]))


@pytest.fixture
def mesh(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    return sandbox


def settings(sandbox: Sandbox, mailbox: str, tmp_path: Path, **more: Any) -> Settings:
    return Settings(
        mesh_url=sandbox.url,
        mesh_mailbox=mailbox,
        mesh_password=PASSWORD,
        mesh_shared_key=SHARED_KEY,
        database_url=f"sqlite:///{tmp_path / 'var' / 'escape.sqlite3'}",
        mesh_dead_letter_dir=tmp_path / "dead",
        **more,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'var' / 'escape.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def intake(db: Database, validator: Validator, tmp_path: Path) -> MeshIntake:
    return MeshIntake(db, validator, tmp_path / "dead", "http://127.0.0.1:8080")


@pytest.fixture
def sender(mesh: Sandbox, tmp_path: Path) -> Iterator[MeshTransport]:
    with MeshTransport(settings(mesh, SENDER, tmp_path)) as transport:
        yield transport


@pytest.fixture
def receiver(mesh: Sandbox, tmp_path: Path) -> Iterator[MeshTransport]:
    with MeshTransport(settings(mesh, RECEIVER, tmp_path)) as transport:
        yield transport


def knee() -> Json:
    return json.loads(example("knee-gp"))


def send(sender: MeshTransport, bundle: Json) -> str:
    return sender.send(bundle, RECEIVER, WORKFLOW)


def counts(db: Database) -> dict[str, int]:
    with db.read() as repo:
        return {kind: repo.search(kind)[1] for kind in ("ServiceRequest", "Task", "Patient")}


def recording(handler: Callable[[InboundMessage], Handled], seen: list[InboundMessage]) -> Callable[..., Handled]:
    def record(message: InboundMessage) -> Handled:
        seen.append(message)
        return handler(message)

    return record


def test_a_referral_sent_to_a_mailbox_is_processed_into_the_database_and_acknowledged(
    sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake, db: Database
) -> None:
    sender.handshake()
    message_id = send(sender, knee())
    assert receiver.inbox() == [message_id]

    seen: list[InboundMessage] = []
    (received,) = receiver.poll(recording(intake, seen))

    assert received == Received(message_id, Handled(Disposition.PROCESSED, "referral ESCAPE-000001"), True)
    (message,) = seen
    assert (message.sender, message.workflow_id, message.message_type) == (SENDER, WORKFLOW, "DATA")
    assert message.local_id == knee()["id"]  # the Bundle id travels as Mex-LocalID
    assert message.content_type == "application/fhir+json"
    assert message.data == jsonio.dumps(knee())
    assert counts(db) == {"ServiceRequest": 1, "Task": 1, "Patient": 1}
    with db.read() as repo:
        logged = repo.message(knee()["id"])
    assert logged is not None and logged.request_id == f"mesh:{message_id}"
    assert receiver.inbox() == []
    assert receiver.poll(intake) == []


def test_the_same_bundle_sent_twice_is_stored_once_and_both_are_acknowledged(
    sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake, db: Database
) -> None:
    first, second = send(sender, knee()), send(sender, knee())

    got = {r.message_id: r for r in receiver.poll(intake)}

    assert got[first].handled.disposition is Disposition.PROCESSED
    assert got[second].handled == Handled(Disposition.DUPLICATE, "Bundle already processed as ESCAPE-000001")
    assert got[second].acknowledged
    assert counts(db) == {"ServiceRequest": 1, "Task": 1, "Patient": 1}
    assert receiver.inbox() == []


def test_an_xml_bundle_is_sent_as_fhir_xml_and_processed(
    sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake, db: Database
) -> None:
    data = example("hip-msk-triage", "xml")
    sender.send({"id": "hip-msk-triage"}, RECEIVER, WORKFLOW, fmt="xml", data=data)
    seen: list[InboundMessage] = []

    (received,) = receiver.poll(recording(intake, seen))

    assert received.handled.disposition is Disposition.PROCESSED
    assert (seen[0].content_type, seen[0].data) == ("application/fhir+xml", data)
    assert counts(db)["Task"] == 1


def broken_patient(bundle: Json) -> Json:
    bundle["entry"][2]["resource"]["identifier"][0]["value"] = "9990000019"  # fails Modulus 11
    return bundle


def other_event(bundle: Json) -> Json:
    bundle["entry"][0]["resource"]["eventCoding"] = {"system": "https://example.org/events", "code": "lab-result"}
    return bundle


REFUSED = [
    pytest.param(b"this is not FHIR", "400 structure at the message", id="not-fhir"),
    pytest.param(
        b'{"resourceType": "Bundle", "id": "x", "type": "message"}', "400 required at Bundle.entry", id="empty"
    ),
    pytest.param(broken_patient, "400 value at Bundle.entry[2].resource.identifier[0]", id="invalid-nhs-number"),
    pytest.param(other_event, "422 not-supported at Bundle.entry[0].resource.eventCoding", id="not-a-referral"),
]


@pytest.mark.parametrize(("content", "reason"), REFUSED)
def test_a_message_that_cannot_be_taken_is_kept_with_its_reason_acknowledged_and_blocks_nothing(
    sender: MeshTransport,
    receiver: MeshTransport,
    intake: MeshIntake,
    db: Database,
    tmp_path: Path,
    content: bytes | Callable[[Json], Json],
    reason: str,
) -> None:
    data = content if isinstance(content, bytes) else jsonio.dumps(content(knee()))
    bad = sender.send({"id": "bad"}, RECEIVER, WORKFLOW, data=data)
    good = send(sender, knee())

    got = {r.message_id: r for r in receiver.poll(intake)}

    assert got[bad].handled.disposition is Disposition.REFUSED
    assert got[bad].handled.detail.startswith(reason), got[bad].handled.detail
    assert got[bad].acknowledged
    assert got[good].handled.disposition is Disposition.PROCESSED
    assert receiver.inbox() == []
    kept = tmp_path / "dead" / bad
    assert (kept / "message.json").read_bytes() == data
    about = json.loads((kept / "mesh.json").read_bytes())
    assert (about["kind"], about["sender"], about["workflow_id"], about["local_id"]) == (
        "refused",
        SENDER,
        WORKFLOW,
        "bad",
    )
    outcome = json.loads((kept / "outcome.json").read_bytes())
    assert outcome["resourceType"] == "OperationOutcome"
    assert reason.split(" at ")[1] in (outcome["issue"][0].get("expression") or ["the message"])[0]
    assert counts(db)["Task"] == 1


def test_a_failure_of_ours_leaves_the_message_in_the_inbox_for_the_next_poll(
    sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake, validator: Validator, tmp_path: Path
) -> None:
    message_id = send(sender, knee())
    unmigrated = Database.from_url(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # no tables: every query fails
    try:
        (received,) = receiver.poll(MeshIntake(unmigrated, validator, tmp_path / "dead", "http://x"))
    finally:
        unmigrated.dispose()

    assert received.handled.disposition is Disposition.LEFT
    assert "OperationalError" in received.handled.detail
    assert not received.acknowledged
    assert receiver.inbox() == [message_id]
    assert not (tmp_path / "dead").exists()
    (retried,) = receiver.poll(intake)
    assert (retried.handled.disposition, retried.acknowledged) == (Disposition.PROCESSED, True)


def test_a_message_downloaded_again_after_a_lost_acknowledgement_is_not_processed_twice(
    sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake, db: Database
) -> None:
    send(sender, knee())

    def processed_but_not_acknowledged(message: InboundMessage) -> Handled:
        assert intake(message).disposition is Disposition.PROCESSED
        return Handled(Disposition.LEFT, "as if the acknowledgement were lost")

    receiver.poll(processed_but_not_acknowledged)
    (again,) = receiver.poll(intake)

    assert again.handled == Handled(Disposition.DUPLICATE, "this MESH message was processed before")
    assert again.acknowledged
    assert counts(db)["Task"] == 1


def test_a_mesh_report_is_kept_and_acknowledged(
    mesh: Sandbox, receiver: MeshTransport, intake: MeshIntake, tmp_path: Path
) -> None:
    report = mesh.report(RECEIVER, "20260101000000000000_ABCDEF", WORKFLOW)

    (received,) = receiver.poll(intake)

    assert received.message_id == report
    assert received.handled.disposition is Disposition.REPORT
    assert "20260101000000000000_ABCDEF" in received.handled.detail
    assert received.acknowledged
    assert json.loads((tmp_path / "dead" / report / "mesh.json").read_bytes())["kind"] == "report"


def test_poll_takes_only_the_given_workflow(sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake) -> None:
    ours = send(sender, knee())
    theirs = sender.send({"id": "x"}, RECEIVER, "SOMEONE_ELSES_WORKFLOW", data=b"{}")

    assert [r.message_id for r in receiver.poll(intake, workflow_id=WORKFLOW)] == [ours]
    assert receiver.inbox() == [theirs]


def test_mesh_errors_are_translated_at_the_boundary(mesh: Sandbox, sender: MeshTransport, tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="MESH refused to send") as refused:
        sender.send(knee(), "NOSUCHBOX", WORKFLOW)
    assert refused.value.reached and not refused.value.transient and refused.value.__cause__ is not None

    wrong = settings(mesh, RECEIVER, tmp_path).model_copy(update={"mesh_password": SecretStr("not-the-password")})
    with MeshTransport(wrong) as transport, pytest.raises(MeshError, match="HTTP 403") as forbidden:
        transport.inbox()
    assert forbidden.value.status == 403
    assert "not-the-password" not in str(forbidden.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"mesh_url": ""}, "MESH needs ESCAPE_FHIR_MESH_URL", id="no-url"),
        pytest.param({"mesh_url": "http://mesh.example.nhs.uk"}, "refusing plain http", id="plain-http"),
        pytest.param({"mesh_client_key": "key.pem"}, "go together", id="key-without-cert"),
    ],
)
def test_settings_that_cannot_work_are_refused(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    base = Settings(mesh_url="http://127.0.0.1:1", mesh_mailbox=RECEIVER, mesh_password=PASSWORD)
    with pytest.raises(SettingsError, match=message):
        MeshTransport(base.model_copy(update=change))


def test_the_password_and_shared_key_never_show() -> None:
    shown = repr(Settings(mesh_password="s3cret-mesh-pw", mesh_shared_key="s3cret-key"))
    assert "s3cret" not in shown


def test_cli_send_then_poll(
    mesh: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "MESH_URL": mesh.url,
        "MESH_PASSWORD": PASSWORD,
        "MESH_SHARED_KEY": SHARED_KEY,
        "MESH_DEAD_LETTER_DIR": str(tmp_path / "dead"),
    }.items():
        monkeypatch.setenv(f"ESCAPE_FHIR_{name}", value)
    bundle = Path(__file__).parents[2] / "examples" / "bundles" / "knee-gp.message.xml"

    monkeypatch.setenv("ESCAPE_FHIR_MESH_MAILBOX", SENDER)
    assert main(["mesh", "send", str(bundle), "--to", RECEIVER, "--workflow-id", WORKFLOW]) == 0
    message_id = capsys.readouterr().out.strip()
    assert main(["mesh", "send", str(bundle), "--to", "NOSUCHBOX", "--workflow-id", WORKFLOW]) == 1
    assert "MESH refused to send" in capsys.readouterr().err

    monkeypatch.setenv("ESCAPE_FHIR_MESH_MAILBOX", RECEIVER)
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert main(["mesh", "poll", "--database-url", database]) == 0
    assert capsys.readouterr().out == f"{message_id} processed (acknowledged): referral ESCAPE-000001\n"
    assert main(["mesh", "poll", "--database-url", database]) == 0
    assert capsys.readouterr().out == ""

    monkeypatch.setenv("ESCAPE_FHIR_MESH_MAILBOX", OTHER)
    monkeypatch.setenv("ESCAPE_FHIR_MESH_PASSWORD", "wrong-password")
    assert main(["mesh", "poll", "--database-url", database]) == 1
    assert "HTTP 403" in capsys.readouterr().err
    monkeypatch.setenv("ESCAPE_FHIR_MESH_URL", "http://127.0.0.1:1")
    assert main(["mesh", "poll", "--database-url", database]) == 3
    assert "MESH unreachable" in capsys.readouterr().err
    monkeypatch.setenv("ESCAPE_FHIR_MESH_URL", "http://mesh.example.nhs.uk")
    assert main(["mesh", "poll"]) == 2
    assert "refusing plain http" in capsys.readouterr().err
    assert main(["mesh", "send", str(tmp_path), "--to", RECEIVER, "--workflow-id", WORKFLOW]) == 2


def test_a_reused_bundle_id_or_a_second_new_is_refused_and_kept_while_the_same_content_as_xml_is_a_duplicate(
    sender: MeshTransport, receiver: MeshTransport, intake: MeshIntake, db: Database, tmp_path: Path
) -> None:
    """Message semantics hold by MESH as by HTTP (issue 9): only the same content is a duplicate."""
    first = send(sender, knee())
    as_xml = sender.send(knee(), RECEIVER, WORKFLOW, fmt="xml", data=example("knee-gp", "xml"))
    changed = knee()
    changed["entry"][1]["resource"]["priority"] = "urgent"
    reused = send(sender, changed)
    second_new = knee()
    second_new["id"] = "another-bundle-of-the-same-referral"
    again_new = send(sender, second_new)

    got = {r.message_id: r for r in receiver.poll(intake)}

    assert got[first].handled.disposition is Disposition.PROCESSED
    assert got[as_xml].handled == Handled(Disposition.DUPLICATE, "Bundle already processed as ESCAPE-000001")
    assert got[reused].handled.disposition is Disposition.REFUSED
    assert got[reused].handled.detail.startswith("422 conflict at Bundle.id (+1 more)"), got[reused].handled.detail
    outcome = json.loads((tmp_path / "dead" / reused / "outcome.json").read_bytes())
    assert outcome["issue"][1]["expression"] == ["Bundle.entry[1].resource.priority"]
    assert got[again_new].handled.disposition is Disposition.REFUSED
    assert got[again_new].handled.detail.startswith("422 business-rule at Bundle.entry[0].resource.reason")
    assert all(r.acknowledged for r in got.values())
    assert counts(db) == {"ServiceRequest": 1, "Task": 1, "Patient": 1}
