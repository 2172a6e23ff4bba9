"""Hub mode to a site that takes referrals by MESH: the hub's outbox sends the routed referral to the site's
mailbox in mesh-sandbox (NHS England's local MESH API, no mocks), and the site's intake takes it in once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from escape_fhir.service.mesh_intake import MeshIntake
from escape_fhir.storage import Database
from escape_fhir.transport.mesh import Disposition, MeshTransport
from escape_fhir.transport.outbox import ClientTransport, Runner
from tests.api.conftest import MakeClient, make_client  # noqa: F401 - fixture
from tests.sites.directory import load, row
from tests.sites.test_hub import Hub
from tests.transport.mesh_sandbox import RECEIVER, SENDER, Sandbox
from tests.transport.outbox_fixtures import FAST_POLICY, referral_message
from tests.transport.test_mesh import WORKFLOW, counts, mesh, sandbox, settings, validator  # noqa: F401


@pytest.fixture
def hub(make_client: MakeClient, tmp_path: Path) -> Iterator[Hub]:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    made = Hub(make_client(database_url=url, hub=True), url)
    yield made
    made.db.dispose()


def test_a_referral_routed_to_a_mesh_site_arrives_once(
    hub: Hub,
    mesh: Sandbox,  # noqa: F811
    validator: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    site = row("mesh-site", mesh_mailbox=RECEIVER, mesh_workflow_id=WORKFLOW)
    del site["bars_endpoint"]
    load(hub.db, [site])
    data, _ = referral_message("knee-gp")
    assert hub.post(data).status_code == 200
    (queued,) = hub.messages()
    assert queued.destination == f"mesh:{RECEIVER}/{WORKFLOW}"
    with MeshTransport(settings(mesh, SENDER, tmp_path / "hub")) as ours:
        runner = Runner(hub.db, ClientTransport(), FAST_POLICY, mesh=ours)
        assert runner.run_once().delivered == 1
        assert runner.run_once().claimed == 0  # sent once
    (sent,) = hub.messages()
    assert (sent.state, sent.last_status) == ("delivered", 202)
    site_db = Database.from_url(f"sqlite:///{tmp_path / 'site.sqlite3'}")
    site_db.migrate()
    try:
        with MeshTransport(settings(mesh, RECEIVER, tmp_path / "site")) as theirs:
            intake = MeshIntake(site_db, validator, tmp_path / "dead", "http://127.0.0.1:8080")  # type: ignore[arg-type]
            (received,) = theirs.poll(intake)
        assert received.handled.disposition is Disposition.PROCESSED
        assert received.acknowledged
        assert counts(site_db)["ServiceRequest"] == 1
    finally:
        site_db.dispose()


def test_without_a_mesh_mailbox_the_message_waits_and_says_why(hub: Hub) -> None:
    site = row("mesh-site", mesh_mailbox="SITE01", mesh_workflow_id=WORKFLOW)
    del site["bars_endpoint"]
    load(hub.db, [site])
    data, _ = referral_message("knee-gp")
    hub.post(data)
    report = Runner(hub.db, ClientTransport(), FAST_POLICY).run_once()
    assert report.retrying == 1
    (waiting,) = hub.messages()
    assert waiting.state == "pending" and waiting.last_error == "no MESH mailbox configured (ESCAPE_FHIR_MESH_*)"
