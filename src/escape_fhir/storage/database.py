"""Engines, transactions and migrations. Built by the app factory from settings, never at import time.

SQLite (the default, a file under ``./var/``) runs in WAL mode with a busy timeout, and write transactions
start with ``BEGIN IMMEDIATE`` so that two writers queue instead of failing on a lock upgrade
(https://www.sqlite.org/lang_transaction.html). PostgreSQL gets ``READ COMMITTED`` transactions; the
unique constraints of the message log and the referral table make concurrent duplicates fail cleanly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from escape_fhir.storage.repository import Repository

#: Seconds a SQLite writer waits for the database (sqlite3 ``timeout``, the busy timeout).
_BUSY_TIMEOUT = 30
#: Key of the PostgreSQL advisory lock taken while migrating, so two servers starting together queue.
_MIGRATION_LOCK = 0x65736366  # "escf"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on first start.

    ``hide_parameters``: the text of a database error never shows the bound values, which hold NHS numbers
    and names (they would otherwise reach the log with the error).
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    if path and path != ":memory:":
        _create_private(Path(path))
    engine = create_engine(
        url, connect_args={"timeout": _BUSY_TIMEOUT, "check_same_thread": False}, hide_parameters=True
    )

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


def _create_private(path: Path) -> None:
    """Create the database file (and a missing folder) readable by its owner only: it holds patient data.
    SQLite gives the ``-wal`` and ``-shm`` files it creates later the database file's permissions
    (https://www.sqlite.org/src/file/src/os_unix.c, ``findCreateFileMode``), so creating the file 0600 first
    covers all three. An existing file is left as its owner set it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """The engine and the unit of work: ``with db.write() as repo: ...`` commits on success."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(escape_fhir_write=True)
        # SQLite has one writer at a time. Writers of this process wait their turn here, woken as soon as
        # the previous one ends, instead of in SQLite's busy handler, which sleeps and polls (up to 100 ms
        # a time), so that under load most of a request's time was spent asleep (README "Benchmarks").
        # Other processes on the same file still queue in the busy handler.
        self._turn = threading.Lock() if engine.dialect.name == "sqlite" else None
        #: Called at the end of every write transaction, before the commit, with its repository (whose
        #: ``written`` lists the versions written): what must happen in the same transaction as a change,
        #: such as queueing its Subscription notifications (escape_fhir.service.subscriptions).
        self.write_hooks: list[Callable[[Repository], None]] = []

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Repository]:
        """A write transaction; committed when the block ends without an exception."""
        with self._write_turn(), Session(self._writer) as session, session.begin():
            repo = Repository(session)
            yield repo
            if repo.written:
                for hook in self.write_hooks:
                    hook(repo)

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        # Never waits longer than SQLite itself would (the busy timeout); past it, SQLite decides.
        held = self._turn is not None and self._turn.acquire(timeout=_BUSY_TIMEOUT)
        try:
            yield
        finally:
            if held and self._turn is not None:
                self._turn.release()

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
