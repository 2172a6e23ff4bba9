"""The canonical content hash of each logged message (a retry is told from a reused Bundle id by it).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: messages logged before this revision have no hash; intake computes it from their original
    # bytes when a message with the same Bundle id comes again (escape_fhir.service.intake).
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("content_hash")
