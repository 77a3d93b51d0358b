"""The inbox keys on (group, source, id); ids and sources as wide as the envelope allows.

CloudEvents makes only (source, id) unique, so two producers may use one id. Claims made before
this revision do not know their source: they keep source '' and `inbox.claim` still honours them
until the retention prunes them. `event_id` widens from 64 to 200 characters in the inbox and
the outbox (PostgreSQL refused longer ids; SQLite never checked).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SOURCE_COMMENT = "The envelope's source; '' before 0004."


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _upgrade_sqlite()
        return
    op.add_column(
        "tidings_inbox",
        sa.Column("source", sa.String(200), nullable=False, server_default="", comment=_SOURCE_COMMENT),
    )
    op.alter_column("tidings_inbox", "source", server_default=None)
    op.alter_column("tidings_inbox", "event_id", type_=sa.String(200), existing_nullable=False)
    op.drop_constraint("tidings_inbox_pkey", "tidings_inbox", type_="primary")
    op.create_primary_key("tidings_inbox_pkey", "tidings_inbox", ["consumer_group", "source", "event_id"])
    op.alter_column("tidings_outbox", "event_id", type_=sa.String(200), existing_nullable=False)


def _upgrade_sqlite() -> None:
    """SQLite cannot change a primary key in place: a new inbox table, the claims copied over."""
    op.create_table(
        "tidings_inbox_0004",
        sa.Column("consumer_group", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(200), primary_key=True, comment=_SOURCE_COMMENT),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column(
            "claimed_at", sa.Float, nullable=False, comment="Unix seconds when the handler's transaction claimed it."
        ),
    )
    op.execute(
        "INSERT INTO tidings_inbox_0004 (consumer_group, source, event_id, claimed_at)"
        " SELECT consumer_group, '', event_id, claimed_at FROM tidings_inbox"
    )
    op.drop_index("ix_tidings_inbox_claimed_at", table_name="tidings_inbox")
    op.drop_table("tidings_inbox")
    op.rename_table("tidings_inbox_0004", "tidings_inbox")
    op.create_index("ix_tidings_inbox_claimed_at", "tidings_inbox", ["claimed_at"])
    with op.batch_alter_table("tidings_outbox") as batch:
        batch.alter_column("event_id", type_=sa.String(200), existing_type=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    raise NotImplementedError("claims of colliding ids from two sources cannot be merged back into one key")
