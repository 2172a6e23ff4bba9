"""Search on every type a referral carries (issue 15): string and date index tables, every resource indexed
again by the declared parameters, and the Subscription each notification in the outbox is for.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Resources read per statement while indexing again.
_CHUNK = 500


def upgrade() -> None:
    op.create_table(
        "search_string",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("norm", sa.String(255), nullable=False),
    )
    op.create_index("ix_search_string_lookup", "search_string", ["resource_type", "param", "norm"])
    op.create_index("ix_search_string_resource", "search_string", ["resource_type", "resource_id"])
    if op.get_bind().dialect.name == "postgresql":
        # LIKE 'prefix%' uses a btree only with the pattern operator class whatever the database's collation.
        op.create_index(
            "ix_search_string_prefix",
            "search_string",
            ["resource_type", "param", "norm"],
            postgresql_ops={"norm": "varchar_pattern_ops"},
        )
    op.create_table(
        "search_date",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("low", sa.DateTime(), nullable=False),
        sa.Column("high", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_search_date_lookup", "search_date", ["resource_type", "param", "low", "high"])
    op.create_index("ix_search_date_resource", "search_date", ["resource_type", "resource_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("subscription_id", sa.String(64), nullable=True))
        batch.create_index("ix_outbox_subscription", ["subscription_id", "state"])
    _index_again()


def _index_again() -> None:
    """Every current resource's search values by today's parameter table (the table grew with this revision)."""
    from escape_fhir.storage import tables as t
    from escape_fhir.storage.index import index_of

    bind = op.get_bind()
    c, v = t.resource_current, t.resource_version
    bind.execute(sa.delete(t.search_token))
    last: tuple[str, str] = ("", "")
    while True:
        same = sa.and_(
            c.c.resource_type == v.c.resource_type, c.c.resource_id == v.c.resource_id, c.c.version_id == v.c.version_id
        )
        after = sa.or_(c.c.resource_type > last[0], sa.and_(c.c.resource_type == last[0], c.c.resource_id > last[1]))
        query = (
            sa.select(c.c.resource_type, c.c.resource_id, v.c.content)
            .join(v, same)
            .where(c.c.deleted.is_(False), after)
            .order_by(c.c.resource_type, c.c.resource_id)
            .limit(_CHUNK)
        )
        rows = bind.execute(query).all()
        if not rows:
            return
        tokens, strings, dates = [], [], []
        for kind, rid, content in rows:
            entries = index_of(json.loads(content))
            key = {"resource_type": kind, "resource_id": rid}
            tokens += [key | {"param": e.param, "system": e.system, "value": e.value} for e in entries.tokens]
            strings += [key | {"param": e.param, "value": e.value, "norm": e.norm} for e in entries.strings]
            dates += [key | {"param": e.param, "low": e.low, "high": e.high} for e in entries.dates]
        for table, batch in ((t.search_token, tokens), (t.search_string, strings), (t.search_date, dates)):
            if batch:
                bind.execute(sa.insert(table), batch)
        last = (rows[-1][0], rows[-1][1])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_subscription")
        batch.drop_column("subscription_id")
    op.drop_table("search_date")
    op.drop_table("search_string")
