"""Write broker rows the way a buggy or foreign writer could: straight into the SQLite file.

For tests only. It knows the broker's schema (version 1 in `tidings.transport.sqlite.store`)
and bypasses `publish` and its codec, so any headers and body can be stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidings.envelope import Envelope, to_binary

PREFIX = "ce_"


def binary_headers(envelope: Envelope) -> dict[str, str]:
    """The headers `publish` would store for `envelope`, as a dict to tamper with."""
    headers, _ = to_binary(envelope, PREFIX)
    return headers


def inject_raw(
    path: str | Path,
    *,
    type: str,
    headers: str | bytes | dict[str, Any],
    body: bytes | str,
    partition_key: str | None = None,
    event_id: str = "injected",
) -> int:
    """Store one message routed as `type` and fan it out to every group subscribed to `type`.

    `headers` is stored as given (a dict is dumped as JSON first). Returns the message id.
    """
    (message_id,) = inject_many(
        path, [Row(type=type, headers=headers, body=body, partition_key=partition_key, event_id=event_id)]
    )
    return message_id


@dataclass(frozen=True)
class Row:
    """One message for `inject_many`; the fields mean what `inject_raw`'s arguments do."""

    type: str
    headers: str | bytes | dict[str, Any]
    body: bytes | str
    partition_key: str | None = None
    event_id: str = "injected"


def inject_many(path: str | Path, rows: Iterable[Row]) -> list[int]:
    """`inject_raw` for many messages, in order and in one transaction; returns their ids."""
    ids = []
    with sqlite3.connect(path, timeout=5, isolation_level=None) as db:
        db.execute("BEGIN IMMEDIATE")
        for row in rows:
            ids.append(_insert(db, row))
        db.execute("COMMIT")
    db.close()
    return ids


def _insert(db: sqlite3.Connection, row: Row) -> int:
    stored = json.dumps(row.headers) if isinstance(row.headers, dict) else row.headers
    now, partition_key = time.time(), row.partition_key
    message_id = db.execute(
        "INSERT INTO messages (event_id, type, partition_key, headers, body, published_at) VALUES (?, ?, ?, ?, ?, ?)",
        (row.event_id, row.type, partition_key, stored, row.body, now),
    ).lastrowid
    groups = [found[0] for found in db.execute("SELECT grp FROM subscriptions WHERE type = ?", (row.type,))]
    for group in groups:
        pending = (
            partition_key is not None
            and db.execute(
                "SELECT 1 FROM deliveries WHERE grp = ? AND partition_key = ?", (group, partition_key)
            ).fetchone()
        )
        db.execute(
            "INSERT INTO deliveries (grp, message_id, partition_key, state, available_at) VALUES (?, ?, ?, ?, ?)",
            (group, message_id, partition_key, "waiting" if pending else "ready", float("inf") if pending else now),
        )
    assert message_id is not None
    return message_id
