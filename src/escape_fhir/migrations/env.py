"""Alembic environment: runs on the connection handed over by :func:`escape_fhir.migrations.upgrade`."""

from __future__ import annotations

from alembic import context

from escape_fhir.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the project never runs Alembic without a connection
    raise RuntimeError("run migrations through escape_fhir.migrations.upgrade(connection)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
