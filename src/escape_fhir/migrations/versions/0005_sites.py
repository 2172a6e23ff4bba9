"""The site directory: sites, the areas they cover, the sources they accept, the hub's routings and its
"to contact" list (escape_fhir.sites.tables).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site",
        sa.Column("site_id", sa.String(40), primary_key=True),
        sa.Column("programme", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ods_code", sa.String(16), nullable=False),
        sa.Column("postcode", sa.String(8), nullable=False),
        sa.Column("latitude", sa.Float, nullable=True),
        sa.Column("longitude", sa.Float, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_site_programme", "site", ["programme", "active"])
    op.create_index("ix_site_ods", "site", ["ods_code"])
    op.create_index("ix_site_postcode", "site", ["postcode"])
    op.create_index("ix_site_position", "site", ["latitude", "longitude"])
    op.create_table(
        "site_area",
        sa.Column("site_id", sa.String(40), primary_key=True),
        sa.Column("area", sa.String(8), primary_key=True),
    )
    op.create_index("ix_site_area_area", "site_area", ["area"])
    op.create_table(
        "site_source",
        sa.Column("site_id", sa.String(40), primary_key=True),
        sa.Column("source", sa.String(32), primary_key=True),
    )
    op.create_index("ix_site_source_source", "site_source", ["source"])
    op.create_table(
        "site_route",
        sa.Column("referral_number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("site_id", sa.String(40), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("outbox_id", sa.Integer, nullable=True),
        sa.Column("contact_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "site_contact",
        sa.Column("communication_request_id", sa.String(64), primary_key=True),
        sa.Column("referral_number", sa.Integer, nullable=False),
        sa.Column("site_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_site_contact_status", "site_contact", ["status", "created"])


def downgrade() -> None:
    op.drop_table("site_contact")
    op.drop_table("site_route")
    op.drop_index("ix_site_source_source", "site_source")
    op.drop_table("site_source")
    op.drop_index("ix_site_area_area", "site_area")
    op.drop_table("site_area")
    for name in ("ix_site_position", "ix_site_postcode", "ix_site_ods", "ix_site_programme"):
        op.drop_index(name, "site")
    op.drop_table("site")
