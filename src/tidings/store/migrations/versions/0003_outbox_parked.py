"""Parked outbox rows: rows the relay set aside because they can never be published.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tidings_outbox_parked",
        sa.Column("id", _Id, primary_key=True, autoincrement=True, comment="Order of parking."),
        sa.Column("outbox_id", sa.BigInteger, nullable=False, comment="The row's id in tidings_outbox."),
        sa.Column("source", sa.String(200), nullable=False, comment="The service whose relay parked the row."),
        sa.Column("event_id", sa.String(200), nullable=False, comment="The envelope's CloudEvents id, as stored."),
        sa.Column("headers", sa.Text, nullable=False, comment="The outbox row's headers, unchanged."),
        sa.Column("body", sa.LargeBinary, nullable=False, comment="The outbox row's body, unchanged."),
        sa.Column("created_at", sa.Float, nullable=False, comment="Unix seconds when the outbox row was written."),
        sa.Column("reason", sa.Text, nullable=False, comment="Why it cannot be published."),
        sa.Column("parked_at", sa.Float, nullable=False, comment="Unix seconds when the relay parked it."),
    )


def downgrade() -> None:
    op.drop_table("tidings_outbox_parked")
