"""Saga instances keep the trace context of their business transaction, so that a timeout the
sweeper fires continues that trace instead of starting one (ADR 0020).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tidings_sagas") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(64), nullable=True, comment=_COMMENT))


def downgrade() -> None:
    with op.batch_alter_table("tidings_sagas") as batch:
        batch.drop_column("traceparent")


_COMMENT = "W3C traceparent of the transaction's last step; NULL: none known (tracing off, or before 0005)."
