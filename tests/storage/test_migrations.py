"""Migration 0003 on a database that already holds messages (SQLite and PostgreSQL): the log is kept, the
old messages have no hash, and intake then compares them by their original bytes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from escape_fhir.fhir.canonical import content_hash
from escape_fhir.fhir.formats import parse
from escape_fhir.migrations import upgrade
from escape_fhir.service.intake import Delivery, process_message
from escape_fhir.service.outcomes import OutcomeError
from escape_fhir.storage import Database
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from tests.api.conftest import example, pg_url  # noqa: F401 - fixture

NOW = datetime(2026, 11, 26, 12, 0, 0)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "var").mkdir()
        return f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}"
    found: str = request.getfixturevalue("pg_url")
    return found


def test_0003_keeps_the_message_log_and_old_messages_are_compared_by_their_bytes(url: str) -> None:
    db = Database.from_url(url)
    try:
        with db.engine.connect() as conn:
            upgrade(conn, "0002")
            conn.commit()
        original = example("knee-gp", "xml")
        bundle_id = parse(original)["id"]
        with db.engine.begin() as conn:  # a message logged by the version before 0003
            conn.execute(
                text(
                    "INSERT INTO message (bundle_id, request_id, correlation_id, received, reason, referral_number,"
                    " original, original_format, response) VALUES (:b, 'r-old', 'c-old', :t, 'new', NULL, :o,"
                    " 'xml', '{}')"
                ),
                {"b": bundle_id, "t": NOW, "o": original},
            )
            conn.execute(
                text("INSERT INTO message_request (request_id, bundle_id, received) VALUES ('r-old', :b, :t)"),
                {"b": bundle_id, "t": NOW},
            )
        db.migrate()
        with db.read() as repo:
            logged = repo.logged_message(bundle_id)
        assert logged is not None and (logged.content_hash, logged.original) == (None, original)
        validator = Validator(default_definitions([]))
        same = parse(example("knee-gp"))  # the same content, as JSON: the stored answer again
        delivery = Delivery("r-new", "c-new", example("knee-gp"), "json", "http://127.0.0.1")
        assert process_message(db, same, delivery, validator).replayed
        other = parse(example("knee-gp"))
        other["entry"][1]["resource"]["priority"] = "urgent"
        with pytest.raises(OutcomeError) as caught:
            process_message(db, other, Delivery("r-other", "c", b"{}", "json", "http://127.0.0.1"), validator)
        assert caught.value.status == 422 and caught.value.issues[1].location == "Bundle.entry[1].resource.priority"
        assert content_hash(same) == content_hash(parse(original))
    finally:
        db.dispose()


def test_0004_indexes_the_resources_already_held(url: str) -> None:
    """Resources stored before 0004 are found by the parameters it adds (name, birthdate) and keep the old ones."""
    db = Database.from_url(url)
    try:
        with db.engine.connect() as conn:
            upgrade(conn, "0003")
            conn.commit()
        patient = (
            '{"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}, "identifier": [{"system": '
            '"https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}], "name": [{"family": "Öztürk", '
            '"given": ["Ayşe"]}], "birthDate": "1958-03-14"}'
        )
        with db.engine.begin() as conn:  # a Patient stored by the version before 0004
            row = {"t": "Patient", "i": "p1", "at": NOW, "c": patient}
            conn.execute(
                text(
                    "INSERT INTO resource_version (resource_type, resource_id, version_id, last_updated, deleted,"
                    " content) VALUES (:t, :i, 1, :at, false, :c)"
                ),
                row,
            )
            conn.execute(
                text(
                    "INSERT INTO resource_current (resource_type, resource_id, version_id, last_updated, deleted)"
                    " VALUES (:t, :i, 1, :at, false)"
                ),
                row,
            )
        db.migrate()
        from escape_fhir.service.search import parse_query

        with db.read() as repo:
            for query in (
                "name=ozturk",
                "given=ayse",
                "birthdate=1958",
                "identifier=9990000018",
                "family:exact=Öztürk",
            ):
                name, _, value = query.partition("=")
                conditions = parse_query("Patient", [(name, value)]).conditions
                assert repo.search("Patient", conditions=conditions)[1] == 1, query
    finally:
        db.dispose()
