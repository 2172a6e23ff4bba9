"""Engines, transactions and migrations. Built by the app factory from settings, never at import time.

SQLite (the default, a file under ``./var/``) runs in WAL mode with a busy timeout, and write transactions
start with ``BEGIN IMMEDIATE`` so that two writers queue instead of failing on a lock upgrade
(https://www.sqlite.org/lang_transaction.html). PostgreSQL gets ``READ COMMITTED`` transactions; the
unique constraints of the message log and the referral table make concurrent duplicates fail cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from escape_fhir.storage.repository import Repository

#: Key of the PostgreSQL advisory lock taken while migrating, so two servers starting together queue.
_MIGRATION_LOCK = 0x65736366  # "escf"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on first start."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN (pysqlite's own implicit BEGIN is switched off).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("escape_fhir_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The engine and the unit of work: ``with db.write() as repo: ...`` commits on success."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(escape_fhir_write=True)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Repository]:
        """A write transaction; committed when the block ends without an exception."""
        with Session(self._writer) as session, session.begin():
            yield Repository(session)

    @contextmanager
    def read(self) -> Iterator[Repository]:
        with Session(self.engine) as session, session.begin():
            yield Repository(session)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from escape_fhir.migrations import upgrade

        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
            try:
                upgrade(conn)
                conn.commit()
            finally:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()
