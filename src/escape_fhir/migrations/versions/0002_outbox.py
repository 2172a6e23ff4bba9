"""The outbox of messages to send and the origin of received referrals (where responses go).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(512), nullable=False),
        sa.Column("bundle_id", sa.String(255), nullable=False, unique=True),
        sa.Column("request_id", sa.String(255), nullable=False, unique=True),
        sa.Column("correlation_id", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("body_format", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("delivered", sa.DateTime(), nullable=True),
        sa.Column("service_request_id", sa.String(64), nullable=True),
        sa.Column("receiver_reference", sa.String(255), nullable=True),
        sa.Column("reply_status", sa.String(32), nullable=True),
        sa.Column("reply_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt"])
    op.create_table(
        "referral_origin",
        sa.Column("referral_number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bundle_id", sa.String(255), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=False),
        sa.Column("source_endpoint", sa.String(512), nullable=False),
        sa.Column("own_endpoint", sa.String(512), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("referral_origin")
    op.drop_index("ix_outbox_due", "outbox")
    op.drop_table("outbox")
