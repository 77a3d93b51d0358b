"""The service's own database: SQLAlchemy 2 async on SQLite (aiosqlite) or PostgreSQL (asyncpg).

- `Store`: engine, sessions, migrations (`Store.open(url, metadata=...)`); `store.dialect` is the
  database's `StoreDialect` (`tidings.store.sqlite`, `tidings.store.postgres`), also found by
  `dialect_for(session)`.
- `tidings.store.transaction.Transaction`: a unit of work's transaction, a Core connection and
  an ORM session made on demand; the table operations take either (`Executor`).
- `inbox`: `claim(connection, group, source, event_id)`, the idempotent consumer.
- `outbox`: `add(connection, envelopes)`, events that commit with the business rows.
- `parked`: `list`, `replay`, `purge` the outbox rows the relay set aside (they cannot be published).
- `tidings.store.relay.Relay`: publishes the outbox through the transport.
- `tidings.store.retention.InboxRetention`: deletes old inbox ids.
- `outbox_status(url)`: backlog and age of the oldest unsent event.
- `Prepared(statement)`: a Core statement compiled once and, inside a transaction, run on the
  driver, SQLite's or asyncpg (a handler's hot path, ADR 0036).
"""

from tidings.store import inbox, outbox, parked
from tidings.store.database import Store, normalise_url
from tidings.store.dialect import StoreDialect, dialect_for
from tidings.store.prepared import Prepared
from tidings.store.status import OutboxStatus, SourceStatus, outbox_status

__all__ = [
    "OutboxStatus",
    "Prepared",
    "SourceStatus",
    "Store",
    "StoreDialect",
    "dialect_for",
    "inbox",
    "normalise_url",
    "outbox",
    "outbox_status",
    "parked",
]
