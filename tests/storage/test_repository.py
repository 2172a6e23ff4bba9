"""The repository on a real SQLite file: versions, current index, search tokens, the message log."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from escape_fhir.storage import Database, MessageRecord, TokenFilter, VersionConflict

NOW = datetime(2026, 11, 26, 12, 0, 0, 123000)
NHS = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database.from_url(f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}")
    database.migrate()
    database.migrate()  # idempotent
    return database


def patient(rid: str, nhs: str) -> dict[str, object]:
    return {"resourceType": "Patient", "id": rid, "identifier": [{"system": NHS, "value": nhs}]}


def test_every_version_is_kept_and_meta_is_set_by_the_server(db: Database) -> None:
    with db.write() as repo:
        first = repo.save(patient("p1", "9990000018"), NOW)
    with db.write() as repo:
        second = repo.save({**patient("p1", "9990000026"), "meta": {"versionId": "77"}}, NOW + timedelta(seconds=1))
    assert (first.version_id, second.version_id) == (1, 2)
    assert second.content["meta"] == {"versionId": "2", "lastUpdated": "2026-11-26T12:00:01.123Z"}
    with db.read() as repo:
        assert repo.current("Patient", "p1") == second
        assert repo.version("Patient", "p1", 1) == first
        assert [s.version_id for s in repo.history("Patient", "p1")] == [2, 1]
        # search sees only the current version's tokens
        assert repo.search("Patient", [TokenFilter("identifier", ((NHS, "9990000018"),))])[1] == 0
        assert repo.search("Patient", [TokenFilter("identifier", ((None, "9990000026"),))])[1] == 1


def test_a_stale_expected_version_is_refused_and_changes_nothing(db: Database) -> None:
    with db.write() as repo:
        repo.save(patient("p1", "9990000018"), NOW)
    with pytest.raises(VersionConflict), db.write() as repo:
        repo.save(patient("p1", "9990000026"), NOW, expected_version=3)
    with db.read() as repo:
        assert len(repo.history("Patient", "p1")) == 1


def test_search_pages_newest_first_and_filters_on_last_updated(db: Database) -> None:
    with db.write() as repo:
        for i in range(5):
            repo.save(patient(f"p{i}", "9990000018"), NOW + timedelta(minutes=i))
    with db.read() as repo:
        page, total = repo.search("Patient", newest_first=True, count=2, offset=2)
        assert total == 5 and [s.resource_id for s in page] == ["p2", "p1"]
        page, total = repo.search("Patient", updated=[("ge", NOW + timedelta(minutes=3))])
        assert total == 2 and [s.resource_id for s in page] == ["p3", "p4"]


def test_a_message_is_claimed_once_and_a_request_id_logged_once(db: Database) -> None:
    record = MessageRecord("b1", "r1", "c1", "new", None, {})
    with db.write() as repo:
        repo.record_request("r1", "b1", NOW)
        repo.claim_message(record, NOW, b"{}", "json")
        repo.finish_message("b1", 7, {"resourceType": "Bundle"})
    with pytest.raises(IntegrityError), db.write() as repo:
        repo.claim_message(record, NOW, b"{}", "json")
    with pytest.raises(IntegrityError), db.write() as repo:
        repo.record_request("r1", "b2", NOW)
    with db.read() as repo:
        assert repo.request_seen("r1") and not repo.request_seen("r2")
        stored = repo.message("b1")
        assert stored is not None and stored.referral_number == 7 and stored.response == {"resourceType": "Bundle"}


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block (an executemany counts once)."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def task(rid: str, status: str) -> dict[str, object]:
    return {"resourceType": "Task", "id": rid, "status": status, "for": {"reference": f"Patient/{rid}"}}


@pytest.mark.parametrize("count", [1, 3, 60], ids=lambda n: f"{n}-resources")
def test_the_resources_of_one_write_take_a_bounded_number_of_statements(db: Database, count: int) -> None:
    # BEGIN, the current versions, then one executemany each: versions, current rows, tokens.
    with counted(db) as created, db.write() as repo:
        repo.save_all([patient(f"p{i}", "9990000018") for i in range(count)], NOW)
    # ... and for new versions of held resources: current rows updated, their rows deleted from each of the three
    # index tables (tokens, strings, dates), then the new ones inserted (these Patients have tokens only).
    with counted(db) as updated, db.write() as repo:
        repo.save_all([patient(f"p{i}", "9990000026") for i in range(count)] + [task("t1", "requested")], NOW)
    reads = -(-count // 50)  # one select per 50 keys
    assert len(created) == 4 + reads, created
    assert len(updated) == 8 + reads, updated
    with db.read() as repo:
        assert repo.search("Patient", [TokenFilter("identifier", ((NHS, "9990000018"),))])[1] == 0
        assert repo.search("Patient", [TokenFilter("identifier", ((NHS, "9990000026"),))])[1] == count
        assert [s.version_id for s in repo.history("Patient", f"p{count - 1}")] == [2, 1]


def test_a_batch_is_stored_as_the_same_saves_one_by_one_would_store_it(db: Database, tmp_path: Path) -> None:
    one_by_one = Database.from_url(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    one_by_one.migrate()
    batch = [patient("p1", "9990000018"), task("t1", "requested"), patient("p2", "9990000026")]
    again = [task("t1", "accepted"), patient("p1", "9990000034"), task("t1", "completed")]
    for resources in (batch, again):
        with db.write() as repo:
            saved = repo.save_all(resources, NOW)
        with one_by_one.write() as repo:
            expected = [repo.save(r, NOW) for r in resources]
        assert saved == expected
    for database in (db, one_by_one):
        with database.read() as repo:
            assert [s.version_id for s in repo.history("Task", "t1")] == [3, 2, 1]
            assert repo.current("Task", "t1") == saved[-1]
            assert repo.search("Task", [TokenFilter("status", ((None, "completed"),))])[1] == 1
            assert repo.search("Task", [TokenFilter("status", ((None, "accepted"),))])[1] == 0
            assert repo.search("Patient", [TokenFilter("identifier", ((NHS, "9990000018"),))])[1] == 0
            assert set(repo.currents([("Patient", "p1"), ("Patient", "p2"), ("Patient", "nobody")])) == {
                ("Patient", "p1"),
                ("Patient", "p2"),
            }


def test_sqlite_file_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    """The database holds patient data: a new file, its WAL and its shared-memory file are 0600 (README
    "Server"), and a new folder 0700, whatever the umask; checked on a real file after a committed write."""
    old = os.umask(0o022)  # a usual umask, which alone would give 0644
    try:
        database = Database.from_url(f"sqlite:///{tmp_path / 'var' / 'new.sqlite3'}")
        database.migrate()
        with database.write() as repo:
            repo.save(patient("p1", "9990000018"), NOW)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "var").iterdir()}
        folder = stat.S_IMODE((tmp_path / "var").stat().st_mode)
        database.dispose()
    finally:
        os.umask(old)
    assert modes == {"new.sqlite3": 0o600, "new.sqlite3-wal": 0o600, "new.sqlite3-shm": 0o600}
    assert folder == 0o700
