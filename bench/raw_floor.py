"""The raw-driver floor of the reliable path: the same writes as `reliable_path.py`'s service,
done with the bare driver and nothing else, so that Tidings' figure is a ratio to what the
database itself allows on this machine at this moment.

Per event, one transaction (or `per_transaction` events in one): an inbox claim (`INSERT ...
ON CONFLICT DO NOTHING RETURNING`), one business row, one outbox row of 1 KiB (headers and body);
meanwhile a relay reads the oldest 250 outbox rows and deletes them, in a transaction of its own,
until every row is gone. No broker is involved: the floor is the database's share of the path.

- PostgreSQL: asyncpg, `connections` connections (16, like the service's default concurrency),
  each taking events from one queue; the relay on one more connection.
- SQLite: the standard library's `sqlite3`, one connection, WAL and `synchronous=FULL` like
  Tidings' store, `BEGIN IMMEDIATE`; the relay runs after every 250 committed events.

Both use Tidings' own tables (migrated by `Store.open`), so the indexes are the same.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from typing import Any

RELAY_BATCH = 250
ROW_BYTES = 1024

_CLAIM = (
    "INSERT INTO tidings_inbox (consumer_group, source, event_id, claimed_at) VALUES ({0}, {1}, {2}, {3})"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
_ORDER = "INSERT INTO bench_orders (order_id, amount) VALUES ({0}, {1})"
_OUTBOX = "INSERT INTO tidings_outbox (source, event_id, headers, body, created_at) VALUES ({0}, {1}, {2}, {3}, {4})"
_HEADERS = '{"ce_specversion":"1.0","ce_type":"bench.order.accepted","ce_source":"bench","ce_id":"%s"}'


def _row(event_id: str) -> tuple[str, bytes]:
    headers = _HEADERS % event_id
    return headers, b"x" * (ROW_BYTES - len(headers))


def _pg(sql: str, count: int) -> str:
    return sql.format(*(f"${n}" for n in range(1, count + 1)))


def _lite(sql: str, count: int) -> str:
    return sql.format(*("?" for _ in range(count)))


async def postgres(url: str, events: int, *, connections: int = 16, per_transaction: int = 1) -> dict[str, Any]:
    """Events/s of the writes with bare asyncpg on `url` (a database migrated by `Store.open`)."""
    import asyncpg

    claim, order, add = _pg(_CLAIM, 4), _pg(_ORDER, 2), _pg(_OUTBOX, 5)
    pool = await asyncpg.create_pool(url, min_size=connections + 1, max_size=connections + 1)
    try:
        async with pool.acquire() as connection:
            await connection.execute("TRUNCATE tidings_inbox, tidings_outbox, bench_orders")
        ids = [uuid.uuid4().hex for _ in range(events)]
        queue: asyncio.Queue[list[str]] = asyncio.Queue()
        for start in range(0, events, per_transaction):
            queue.put_nowait(ids[start : start + per_transaction])
        deleted = 0

        async def worker() -> None:
            async with pool.acquire() as connection:
                while not queue.empty():
                    chunk = queue.get_nowait()
                    async with connection.transaction():
                        for event_id in chunk:
                            assert await connection.fetchval(claim, "floor", "shop", event_id, time.time())
                            await connection.execute(order, event_id, 1)
                            headers, body = _row(event_id)
                            await connection.execute(add, "bench", event_id, headers, body, time.time())

        async def relay() -> None:
            nonlocal deleted
            async with pool.acquire() as connection:
                while deleted < events:
                    async with connection.transaction():
                        rows = await connection.fetch(
                            "SELECT id, headers, body FROM tidings_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                            RELAY_BATCH,
                        )
                        if rows:
                            await connection.execute(
                                "DELETE FROM tidings_outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                            )
                    deleted += len(rows)
                    if not rows:
                        await asyncio.sleep(0.001)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(relay(), *(worker() for _ in range(connections)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await pool.close()
    return _figures(events, elapsed, cpu, per_transaction)


def sqlite(path: str, events: int, *, per_transaction: int = 1) -> dict[str, Any]:
    """Events/s of the writes with the standard library's sqlite3 on the database file `path`."""
    claim, order, add = _lite(_CLAIM, 4), _lite(_ORDER, 2), _lite(_OUTBOX, 5)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        for table in ("tidings_inbox", "tidings_outbox", "bench_orders"):
            db.execute(f"DELETE FROM {table}")
        ids = [uuid.uuid4().hex for _ in range(events)]
        started, cpu = time.perf_counter(), time.process_time()
        deleted, since_relay = 0, 0
        for start in range(0, events, per_transaction):
            db.execute("BEGIN IMMEDIATE")
            for event_id in ids[start : start + per_transaction]:
                assert db.execute(claim, ("floor", "shop", event_id, time.time())).fetchall()
                db.execute(order, (event_id, 1))
                headers, body = _row(event_id)
                db.execute(add, ("bench", event_id, headers, body, time.time()))
            db.execute("COMMIT")
            since_relay += per_transaction
            if since_relay >= RELAY_BATCH or start + per_transaction >= events:
                since_relay = 0
                while True:
                    db.execute("BEGIN IMMEDIATE")
                    rows = db.execute(
                        "SELECT id, headers, body FROM tidings_outbox ORDER BY id LIMIT ?", (RELAY_BATCH,)
                    ).fetchall()
                    db.executemany("DELETE FROM tidings_outbox WHERE id = ?", [(row[0],) for row in rows])
                    db.execute("COMMIT")
                    deleted += len(rows)
                    if len(rows) < RELAY_BATCH:
                        break
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert deleted == events, (deleted, events)
    finally:
        db.close()
    return _figures(events, elapsed, cpu, per_transaction)


def _figures(events: int, elapsed: float, cpu: float, per_transaction: int) -> dict[str, Any]:
    return {
        "events": events,
        "events_per_transaction": per_transaction,
        "events_per_s": round(events / elapsed),
        "cpu_ms_per_event": round(1000 * cpu / events, 3),
    }
