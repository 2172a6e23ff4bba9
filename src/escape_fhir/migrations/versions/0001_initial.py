"""The first schema: resource versions, current index, search tokens, message log, referrals.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_version",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_table(
        "resource_current",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_resource_current_type_updated", "resource_current", ["resource_type", "last_updated"])
    op.create_table(
        "search_token",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_index("ix_search_token_lookup", "search_token", ["resource_type", "param", "value"])
    op.create_index("ix_search_token_resource", "search_token", ["resource_type", "resource_id"])
    op.create_table(
        "message",
        sa.Column("bundle_id", sa.String(255), primary_key=True),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=False),
        sa.Column("received", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("referral_number", sa.Integer, nullable=True),
        sa.Column("original", sa.LargeBinary, nullable=False),
        sa.Column("original_format", sa.String(8), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
    )
    op.create_table(
        "message_request",
        sa.Column("request_id", sa.String(255), primary_key=True),
        sa.Column("bundle_id", sa.String(255), nullable=False),
        sa.Column("received", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "referral",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("encounter_id", sa.String(64), nullable=False),
        sa.Column("sender_identifier", sa.String(512), nullable=True, unique=True),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "referral_resource",
        sa.Column("referral_number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sender_key", sa.String(512), primary_key=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for name in ("referral_resource", "referral", "message_request", "message", "search_token"):
        op.drop_table(name)
    op.drop_table("resource_current")
    op.drop_table("resource_version")
