"""The tables Tidings keeps in a service's own database, as SQLAlchemy Core metadata.

The migrations in `tidings/store/migrations/` create exactly these tables (a test compares the
two); the code in `inbox`, `outbox` and `relay` reads and writes them through this metadata.
Every name starts with `tidings_` so the service's own tables and its own Alembic history
(in `alembic_version`) can live in the same database.

Times are Unix seconds as floating point numbers (`time.time()`), the same on SQLite and
PostgreSQL, so ages can be computed without time-zone handling.

Ids and sources are as wide as the envelope allows (`MAX_ID_LENGTH`, `MAX_SOURCE_LENGTH`): a
received envelope with a longer one is malformed at decode, so no insert fails on width.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text

from tidings.envelope import MAX_ID_LENGTH, MAX_SOURCE_LENGTH

metadata = MetaData()

# SQLite only auto-increments an `INTEGER PRIMARY KEY`; PostgreSQL gets a BIGINT identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "tidings_outbox",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True, comment="Publication order."),
    Column("source", String(MAX_SOURCE_LENGTH), nullable=False, comment="The service whose relay publishes the row."),
    Column("event_id", String(MAX_ID_LENGTH), nullable=False, comment="The envelope's CloudEvents id."),
    Column("headers", Text, nullable=False, comment="Binary-mode CloudEvents headers as JSON (ce_ prefix)."),
    Column("body", LargeBinary, nullable=False, comment="The event data."),
    Column("created_at", Float, nullable=False, comment="Unix seconds when the row was written."),
)
Index("ix_tidings_outbox_source_id", outbox.c.source, outbox.c.id)

outbox_parked = Table(
    "tidings_outbox_parked",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True, comment="Order of parking."),
    Column("outbox_id", BigInteger, nullable=False, comment="The row's id in tidings_outbox."),
    Column("source", String(MAX_SOURCE_LENGTH), nullable=False, comment="The service whose relay parked the row."),
    Column("event_id", String(MAX_ID_LENGTH), nullable=False, comment="The envelope's CloudEvents id, as stored."),
    Column("headers", Text, nullable=False, comment="The outbox row's headers, unchanged."),
    Column("body", LargeBinary, nullable=False, comment="The outbox row's body, unchanged."),
    Column("created_at", Float, nullable=False, comment="Unix seconds when the outbox row was written."),
    Column("reason", Text, nullable=False, comment="Why it cannot be published."),
    Column("parked_at", Float, nullable=False, comment="Unix seconds when the relay parked it."),
)

inbox = Table(
    "tidings_inbox",
    metadata,
    Column("consumer_group", String(200), primary_key=True),
    Column("source", String(MAX_SOURCE_LENGTH), primary_key=True, comment="The envelope's source; '' before 0004."),
    Column("event_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("claimed_at", Float, nullable=False, comment="Unix seconds when the handler's transaction claimed it."),
)
Index("ix_tidings_inbox_claimed_at", inbox.c.claimed_at)

relay = Table(
    "tidings_relay",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("owner", String(200), nullable=True, comment="The relay that holds the lease (SQLite) or last published."),
    Column("lease_until", Float, nullable=False, server_default="0", comment="Unix seconds; SQLite only."),
    Column("published", BigInteger, nullable=False, server_default="0", comment="Rows published so far."),
    Column("last_published_at", Float, nullable=True),
)

sagas = Table(
    "tidings_sagas",
    metadata,
    Column("saga", String(200), primary_key=True, comment="The saga's name (its class's name= argument)."),
    Column("correlation", String(64), primary_key=True, comment="The business transaction it manages."),
    Column("status", String(32), nullable=False, comment="running, or how it ended (completed, compensated, ...)."),
    Column("state", Text, nullable=False, comment="The saga model as JSON."),
    Column("compensations", Text, nullable=False, comment="Events to publish on compensation, as JSON."),
    Column("deadline", Float, nullable=True, comment="Unix seconds when it times out; NULL: never."),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column(
        "traceparent",
        String(64),
        nullable=True,
        comment="W3C traceparent of the transaction's last step; NULL: none known (tracing off, or before 0005).",
    ),
)
Index("ix_tidings_sagas_due", sagas.c.status, sagas.c.deadline)
