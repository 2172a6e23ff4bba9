"""Alembic migrations of the server's database, shipped in the package so ``serve`` migrates on start.

``upgrade(connection)`` runs every revision up to head on an open connection; the revisions are in
``versions/``. A new revision is a new module there whose ``down_revision`` is the previous head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

HERE = Path(__file__).resolve().parent


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(config(connection), revision)
