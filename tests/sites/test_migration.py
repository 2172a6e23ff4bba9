"""Migration 0005 (the site directory's tables) on SQLite and PostgreSQL: up creates the tables with the
indexes the searches read, down removes them, up again works."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from escape_fhir.migrations import config, upgrade
from escape_fhir.storage import Database
from tests.api.conftest import pg_url  # noqa: F401 - fixture

TABLES = {"site", "site_area", "site_source", "site_route", "site_contact"}
INDEXES = {
    "site": {"ix_site_programme", "ix_site_ods", "ix_site_postcode", "ix_site_position"},
    "site_area": {"ix_site_area_area"},
    "site_source": {"ix_site_source_source"},
    "site_contact": {"ix_site_contact_status"},
}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite3'}"
    found: str = request.getfixturevalue("pg_url")
    return found


def test_0005_up_down_up(url: str) -> None:
    db = Database.from_url(url)
    try:
        db.migrate()
        found = inspect(db.engine)
        assert set(found.get_table_names()) >= TABLES
        for table, names in INDEXES.items():
            assert {i["name"] for i in found.get_indexes(table)} >= names, table
        with db.engine.connect() as conn:
            command.downgrade(config(conn), "0004")
            conn.commit()
        assert not TABLES & set(inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            upgrade(conn)
            conn.commit()
        assert set(inspect(db.engine).get_table_names()) >= TABLES
    finally:
        db.dispose()
