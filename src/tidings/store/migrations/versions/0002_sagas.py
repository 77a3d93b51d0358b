"""Saga instances.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
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
        "tidings_sagas",
        sa.Column("saga", sa.String(200), primary_key=True, comment="The saga's name (its class's name= argument)."),
        sa.Column("correlation", sa.String(64), primary_key=True, comment="The business transaction it manages."),
        sa.Column(
            "status",
            sa.String(32),
            nullable=False,
            comment="running, or how it ended (completed, compensated, ...).",
        ),
        sa.Column("state", sa.Text, nullable=False, comment="The saga model as JSON."),
        sa.Column("compensations", sa.Text, nullable=False, comment="Events to publish on compensation, as JSON."),
        sa.Column("deadline", sa.Float, nullable=True, comment="Unix seconds when it times out; NULL: never."),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_tidings_sagas_due", "tidings_sagas", ["status", "deadline"])


def downgrade() -> None:
    op.drop_index("ix_tidings_sagas_due", table_name="tidings_sagas")
    op.drop_table("tidings_sagas")
