"""The synchronous half of the SQLite broker: the statements that publish, claim and settle,
run on one thread (the tables are in `schema`, members in `members`, the dead-letter and backlog
statements in `admin`).

`Store` owns one `sqlite3` connection and is only ever called from the transport's single
worker thread, so no connection is shared between threads. Every write runs in a
`BEGIN IMMEDIATE` transaction (queued publishes and settlements share one: `commit`). It takes
the database's write lock up front, so two processes never interleave a read-then-write (two
consumers cannot claim the same delivery).

A delivery row is one (group, message) pair, created by fan-out in the publish transaction. Its
`available_at` says when it may next be claimed, whatever its state:

- `ready`: published or retried; claimable once `available_at` has passed;
- `leased`: handed to a consumer; `available_at` is the lease expiry, after which it is
  claimable again (its consumer died) -- so one index finds both kinds of claimable rows;
- `waiting`: an earlier delivery with the same partition key is not settled yet for this
  group; `available_at` is +infinity until that one is acked or dead-lettered ("promotion").

At most one delivery per (group, partition key) is ever not `waiting`, which is how per-key
order is kept with a claim query that costs O(rows claimed), not O(backlog).

A consumer claims the types it subscribed, and also any type that no live member of its group
subscribes (see `members`): a type the group stopped handling reaches a member, whose runtime
dead-letters it, instead of holding back every later delivery of its partition key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tidings.errors import ConfigurationError
from tidings.transport.sqlite.schema import migrate

BLOCKED = float("inf")
"""`available_at` of a `waiting` delivery: never claimable until promoted."""

_INSERT_MESSAGE = (
    "INSERT INTO messages (id, event_id, type, partition_key, headers, body, published_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_DELIVERY = "INSERT INTO deliveries (grp, message_id, partition_key, state, available_at) VALUES (?, ?, ?, ?, ?)"
_CLAIM = """
SELECT d.id, d.message_id, d.partition_key, d.attempts + 1, m.headers, m.body
FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id
WHERE d.grp = ?1 AND d.available_at <= ?2 AND (m.type IN ({types}) OR NOT EXISTS (
    SELECT 1 FROM member_types AS t JOIN members AS p ON p.owner = t.owner
    WHERE t.grp = ?1 AND t.type = m.type AND p.alive_until > ?2
))
ORDER BY d.available_at LIMIT ?3
"""
_LEASE = "UPDATE deliveries SET state = 'leased', attempts = ?, available_at = ?, lease_owner = ? WHERE id = ?"
_MINE = "id = ? AND lease_owner = ? AND attempts = ?"
"""A settlement applies only while the settling consumer still holds that very lease."""
_PROMOTE = """
UPDATE deliveries SET state = 'ready', available_at = ?1 WHERE id = (
    SELECT id FROM deliveries WHERE grp = ?2 AND partition_key = ?3 AND state = 'waiting'
    ORDER BY message_id LIMIT 1
) AND NOT EXISTS (
    SELECT 1 FROM deliveries WHERE grp = ?2 AND partition_key = ?3 AND state IN ('ready', 'leased')
)
"""
_COLLECT = "DELETE FROM messages WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1)"


class Kind(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True)
class Lease:
    """Identifies one claim of one delivery: the row, its holder and the attempt it was claimed for."""

    id: int
    owner: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Claimed:
    lease: Lease
    message_id: int
    partition_key: str | None
    headers: Any  # whatever the row holds; decoded (or refused) by the delivery
    body: Any


@dataclass(frozen=True, slots=True)
class Settlement:
    kind: Kind
    lease: Lease
    group: str
    message_id: int
    partition_key: str | None
    at: float = 0.0  # retry: when it becomes claimable again
    reason: str = ""


Row = tuple[str, str, str | None, str, bytes]
"""A message to publish: event id, type, partition key, headers JSON, body."""


class Store:
    def __init__(self, path: str, *, busy_timeout: float) -> None:
        self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ConfigurationError(f"{path!r} cannot use WAL mode (journal_mode is {mode!r})")
            # WAL + NORMAL: a commit survives the death of any process; only power loss or an OS
            # crash can lose the last transactions (never corrupt the file).
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self.write() as db:
                migrate(db, path)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a plain read, outside any write transaction."""
        return self._db.execute(sql, params).fetchall()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # -- publish ---------------------------------------------------------------------------------

    def commit(self, rows: Sequence[Row], settlements: Sequence[Settlement], now: float) -> list[bool]:
        """Group commit: publish `rows` (in order) and apply `settlements` in one transaction;
        returns, per settlement, False if its lease was lost meanwhile. Publishing first is correct
        for per-key order: a settlement promotes a delivery this publish made `waiting`."""
        with self.write() as db:
            if rows:
                self._publish(db, rows, now)
            return self._settle(db, settlements, now) if settlements else []

    def _publish(self, db: sqlite3.Connection, rows: Sequence[Row], now: float) -> int:
        """Insert the messages some group subscribes to, and fan them out; returns how many."""
        groups: dict[str, list[str]] = {}
        for group, type in db.execute("SELECT grp, type FROM subscriptions"):
            groups.setdefault(type, []).append(group)
        (seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        messages, deliveries, busy_keys = [], [], set()
        for event_id, type, key, headers, body in rows:
            if type not in groups:
                continue  # no group wants it: like an exchange without bindings
            seq += 1
            messages.append((seq, event_id, type, key, headers, body, now))
            for group in groups[type]:
                waiting = key is not None and ((group, key) in busy_keys or self.has_pending(group, key))
                deliveries.append((group, seq, key, "waiting" if waiting else "ready", BLOCKED if waiting else now))
                if key is not None:
                    busy_keys.add((group, key))
        db.executemany(_INSERT_MESSAGE, messages)
        db.executemany(INSERT_DELIVERY, deliveries)
        return len(messages)

    def has_pending(self, group: str, key: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM deliveries WHERE grp = ? AND partition_key = ? LIMIT 1", (group, key)
        ).fetchone()
        return found is not None

    # -- consume and settle ------------------------------------------------------------------

    def claim(
        self, group: str, types: Sequence[str], owner: str, limit: int, now: float, until: float
    ) -> list[Claimed]:
        """Lease up to `limit` claimable deliveries of `types` (or of types no live member of
        `group` subscribes) to `owner` until `until`."""
        sql = _CLAIM.format(types=", ".join(f"?{n}" for n in range(4, 4 + len(types))))
        params = (group, now, limit, *types)
        if self._db.execute(sql, params).fetchone() is None:
            return []  # idle poll: a plain read, no write lock taken
        with self.write() as db:
            rows = db.execute(sql, params).fetchall()
            db.executemany(_LEASE, [(attempts, until, owner, id) for id, _, _, attempts, _, _ in rows])
        return [Claimed(Lease(id, owner, attempts), mid, key, h, b) for id, mid, key, attempts, h, b in rows]

    def _settle(self, db: sqlite3.Connection, batch: Sequence[Settlement], now: float) -> list[bool]:
        """Apply settlements; False for those whose lease was lost meanwhile."""
        done: list[bool] = []
        settled_messages = set()
        for item in batch:
            mine = (item.lease.id, item.lease.owner, item.lease.attempts)
            if item.kind is Kind.RETRY:
                sql = f"UPDATE deliveries SET state = 'ready', available_at = ?, lease_owner = NULL WHERE {_MINE}"
                done.append(db.execute(sql, (item.at, *mine)).rowcount == 1)
                continue
            if item.kind is Kind.DEAD_LETTER:
                db.execute(
                    "INSERT INTO dead_letters (grp, message_id, event_id, type, partition_key, headers, body,"
                    " published_at, reason, attempts, dead_lettered_at)"
                    " SELECT d.grp, m.id, m.event_id, m.type, m.partition_key, m.headers, m.body, m.published_at,"
                    " ?, d.attempts, ? FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id"
                    " WHERE d.id = ? AND d.lease_owner = ? AND d.attempts = ?",
                    (item.reason, now, *mine),
                )
            ok = db.execute(f"DELETE FROM deliveries WHERE {_MINE}", mine).rowcount == 1
            done.append(ok)
            if ok:
                settled_messages.add(item.message_id)
                if item.partition_key is not None:
                    db.execute(_PROMOTE, (now, item.group, item.partition_key))
        db.executemany(_COLLECT, [(id,) for id in settled_messages])
        return done

    def extend(self, leases: Sequence[Lease], until: float) -> None:
        """Heartbeat: push the expiry of leases still held (rows lost meanwhile are left alone)."""
        with self.write() as db:
            db.executemany(
                f"UPDATE deliveries SET available_at = ? WHERE state = 'leased' AND {_MINE}",
                [(until, lease.id, lease.owner, lease.attempts) for lease in leases],
            )

    def release(self, leases: Sequence[tuple[Lease, bool]], now: float) -> None:
        """Make held deliveries claimable at once; `True` also undoes the attempt (never handed out)."""
        with self.write() as db:
            db.executemany(
                "UPDATE deliveries SET state = 'ready', available_at = ?, lease_owner = NULL, attempts = attempts - ?"
                f" WHERE state = 'leased' AND {_MINE}",
                [(now, int(undo), lease.id, lease.owner, lease.attempts) for lease, undo in leases],
            )
