"""Outbox, inbox and relay tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tidings_outbox",
        sa.Column("id", _Id, primary_key=True, autoincrement=True, comment="Publication order."),
        sa.Column("source", sa.String(200), nullable=False, comment="The service whose relay publishes the row."),
        sa.Column("event_id", sa.String(64), nullable=False, comment="The envelope's CloudEvents id."),
        sa.Column("headers", sa.Text, nullable=False, comment="Binary-mode CloudEvents headers as JSON (ce_ prefix)."),
        sa.Column("body", sa.LargeBinary, nullable=False, comment="The event data."),
        sa.Column("created_at", sa.Float, nullable=False, comment="Unix seconds when the row was written."),
    )
    op.create_index("ix_tidings_outbox_source_id", "tidings_outbox", ["source", "id"])
    op.create_table(
        "tidings_inbox",
        sa.Column("consumer_group", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column(
            "claimed_at",
            sa.Float,
            nullable=False,
            comment="Unix seconds when the handler's transaction claimed it.",
        ),
    )
    op.create_index("ix_tidings_inbox_claimed_at", "tidings_inbox", ["claimed_at"])
    op.create_table(
        "tidings_relay",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column(
            "owner",
            sa.String(200),
            nullable=True,
            comment="The relay that holds the lease (SQLite) or last published.",
        ),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0", comment="Unix seconds; SQLite only."),
        sa.Column("published", sa.BigInteger, nullable=False, server_default="0", comment="Rows published so far."),
        sa.Column("last_published_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tidings_relay")
    op.drop_index("ix_tidings_inbox_claimed_at", table_name="tidings_inbox")
    op.drop_table("tidings_inbox")
    op.drop_index("ix_tidings_outbox_source_id", table_name="tidings_outbox")
    op.drop_table("tidings_outbox")
