"""Alembic environment for Tidings' own tables; run only through `tidings.store.migrate`.

The caller passes an open SQLAlchemy connection, already inside a transaction, in
`config.attributes["connection"]`; Alembic then neither opens nor commits a transaction itself.
"""

from __future__ import annotations

from alembic import context

from tidings.store.migrate import VERSION_TABLE
from tidings.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
