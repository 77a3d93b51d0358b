"""Admin statements of the SQLite broker: dead letters (list, replay, purge) and backlog.

Plain functions over a `Store`, run on the transport's worker thread like every other
statement. A dead letter keeps a copy of its message (the message row itself is collected once
no delivery needs it), so replaying puts the message back if it is gone and gives the group a
new, ready delivery of it -- behind the unsettled deliveries of its partition key, if any.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from tidings.transport.base import DeadLetter
from tidings.transport.sqlite.codec import stored_headers
from tidings.transport.sqlite.store import BLOCKED, INSERT_DELIVERY, Store


def dead_letters(store: Store, group: str, limit: int) -> list[DeadLetter]:
    rows = store.read(
        "SELECT id, reason, attempts, headers, body, event_id, type, dead_lettered_at FROM dead_letters"
        " WHERE grp = ? ORDER BY id LIMIT ?",
        (group, limit),
    )
    return [
        DeadLetter(
            id=str(id),
            group=group,
            reason=reason,
            attempts=attempts,
            headers=stored_headers(headers),
            body=body if isinstance(body, bytes) else str(body).encode(),
            event_id=event_id,
            type=type,
            dead_lettered_at=datetime.fromtimestamp(at, UTC),
        )
        for id, reason, attempts, headers, body, event_id, type, at in rows
    ]


def replay(store: Store, group: str, ids: Collection[int] | None, now: float) -> int:
    """Give dead letters back to the group as new, ready deliveries (attempts start again)."""
    with store.write() as db:
        rows = _select_dead(store, group, ids)
        for dead_id, message_id, event_id, type, key, headers, body, published_at in rows:
            db.execute(
                "INSERT OR IGNORE INTO messages (id, event_id, type, partition_key, headers, body, published_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, event_id, type, key, headers, body, published_at),
            )
            waiting = key is not None and store.has_pending(group, key)
            db.execute(
                INSERT_DELIVERY,
                (group, message_id, key, "waiting" if waiting else "ready", BLOCKED if waiting else now),
            )
            db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
        return len(rows)


def purge(store: Store, group: str, ids: Collection[int] | None) -> int:
    with store.write() as db:
        rows = _select_dead(store, group, ids)
        db.executemany("DELETE FROM dead_letters WHERE id = ?", [(row[0],) for row in rows])
        return len(rows)


def backlog(store: Store) -> dict[str, int]:
    rows = store.read(
        "SELECT g.grp, (SELECT count(*) FROM deliveries AS d WHERE d.grp = g.grp)"
        " FROM (SELECT DISTINCT grp FROM subscriptions) AS g ORDER BY g.grp"
    )
    return {group: count for group, count in rows}


def row_ids(ids: Collection[str] | None) -> list[int] | None:
    """Dead-letter handles as row ids; a handle that is not ours matches nothing."""
    if ids is None:
        return None
    return [int(id) for id in ids if str(id).isdigit()]


def _select_dead(store: Store, group: str, ids: Collection[int] | None) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT id, message_id, event_id, type, partition_key, headers, body, published_at FROM dead_letters"
        " WHERE grp = ?"
    )
    if ids is None:
        return store.read(sql + " ORDER BY id", (group,))
    rows = [store.read(sql + " AND id = ?", (group, id)) for id in sorted(set(ids))]
    return [found[0] for found in rows if found]
