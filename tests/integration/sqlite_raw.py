"""Write broker rows the way a buggy or foreign writer could: straight into the SQLite file.

For tests only. It knows the broker's schema (version 1 in `tidings.transport.sqlite.store`)
and bypasses `publish` and its codec, so any headers and body can be stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
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
    stored = json.dumps(headers) if isinstance(headers, dict) else headers
    now = time.time()
    with sqlite3.connect(path, timeout=5, isolation_level=None) as db:
        db.execute("BEGIN IMMEDIATE")
        message_id = db.execute(
            "INSERT INTO messages (event_id, type, partition_key, headers, body, published_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, type, partition_key, stored, body, now),
        ).lastrowid
        groups = [row[0] for row in db.execute("SELECT grp FROM subscriptions WHERE type = ?", (type,))]
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
        db.execute("COMMIT")
    db.close()
    assert message_id is not None
    return message_id
