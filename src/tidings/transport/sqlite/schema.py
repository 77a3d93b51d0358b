"""The SQLite broker's tables, and bringing an older file up to date.

`PRAGMA user_version` holds the schema version of a file. Opening a file of an older version
adds what is missing (every statement is `IF NOT EXISTS`); a file of a newer version is refused,
so an older tidings never works on tables it does not know.
"""

from __future__ import annotations

import sqlite3

from tidings.errors import ConfigurationError

SCHEMA_VERSION = 2
"""1: messages, subscriptions, deliveries, dead letters; 2: members and the types each subscribes."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- publish order, never reused
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    partition_key TEXT,
    headers TEXT NOT NULL,                 -- CloudEvents binary mode: ce_* attributes as JSON
    body BLOB NOT NULL,
    published_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    grp TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (grp, type)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    grp TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    partition_key TEXT,
    state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'waiting')),
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL,
    lease_owner TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (grp, available_at);
CREATE INDEX IF NOT EXISTS deliveries_message ON deliveries (message_id);
CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (grp, partition_key, state, message_id)
    WHERE partition_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    partition_key TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    published_at REAL NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    dead_lettered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_group ON dead_letters (grp, id);
CREATE TABLE IF NOT EXISTS members (
    owner TEXT PRIMARY KEY,                -- the subscription's lease owner
    grp TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    alive_until REAL NOT NULL              -- renewed by its heartbeat like its leases
);
CREATE TABLE IF NOT EXISTS member_types (
    grp TEXT NOT NULL,
    type TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (grp, type, owner)
) WITHOUT ROWID;
"""


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Create or upgrade the schema; call inside a write transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ConfigurationError(f"{path!r} has broker schema {version}; this tidings knows {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
