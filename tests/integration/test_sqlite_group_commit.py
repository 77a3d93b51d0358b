"""Group commit in the SQLite broker: concurrent publishes and settlements of one transport share
a transaction, each caller's await returns only once its own work is committed (another
connection sees it), and a commit that fails fails every caller that shared it, leaving nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from tests.conformance.events import PING, event_id, ping
from tests.conformance.harness import Consumer
from tidings.errors import PublishError
from tidings.transport.sqlite import SqliteTransport


def committed_event_ids(path: Path) -> set[str]:
    """What another connection sees: only committed rows."""
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT event_id FROM messages")}
    finally:
        db.close()


def count_commits(transport: SqliteTransport) -> list[int]:
    """Wrap the store's group commit to count its transactions (and the rows each published)."""
    store = transport._worker.store
    commit = store.commit
    counts: list[int] = []

    def counted(rows: Any, settlements: Any, now: float) -> list[bool]:
        counts.append(len(rows) + len(settlements))
        return commit(rows, settlements, now)

    store.commit = counted  # type: ignore[method-assign]
    return counts


async def test_concurrent_single_publishes_share_transactions_and_each_is_committed_on_return(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broker.db"
    transport = await SqliteTransport.open(f"sqlite:///{path}")
    try:
        subscription = await transport.subscribe("g", [PING])
        counts = count_commits(transport)
        envelopes = [ping(n) for n in range(64)]
        seen_on_return: list[bool] = []

        async def publish_one(n: int) -> None:
            await transport.publish([envelopes[n]])
            seen_on_return.append(envelopes[n].id in committed_event_ids(path))

        await asyncio.gather(*(publish_one(n) for n in range(64)))
        consumer = Consumer(subscription)
        deliveries = await consumer.take(64)
        await asyncio.gather(*(delivery.ack() for delivery in deliveries))
        backlog = (await transport.backlog())["g"]
        await consumer.close()
    finally:
        await transport.close()
    assert seen_on_return == [True] * 64
    assert sorted(event_id(d) for d in deliveries) == sorted(e.id for e in envelopes)
    assert sum(counts) == 128  # 64 rows published, 64 acks
    assert len(counts) < 32, f"{len(counts)} transactions for 64 publishes and 64 acks"
    assert backlog == 0


async def test_a_failed_group_commit_fails_every_caller_in_it_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    transport = await SqliteTransport.open(f"sqlite:///{path}")
    try:
        await transport.subscribe("g", [PING])
        store = transport._worker.store
        commit = store.commit
        calls = 0

        def fail_first(rows: Any, settlements: Any, now: float) -> list[bool]:
            nonlocal calls
            calls += 1
            if calls == 1:
                with store.write() as db:  # the work is done, then the transaction fails
                    store._publish(db, rows, now)
                    raise sqlite3.DatabaseError("database disk image is malformed")
            return commit(rows, settlements, now)

        store.commit = fail_first  # type: ignore[method-assign]
        envelopes = [ping(n) for n in range(8)]
        results = await asyncio.gather(*(transport.publish([e]) for e in envelopes), return_exceptions=True)
        after = committed_event_ids(path)
        await transport.publish([ping(99)])  # the writer goes on with the next transaction
        last = committed_event_ids(path)
    finally:
        await transport.close()
    assert all(isinstance(result, PublishError) for result in results), results
    assert after == set()
    assert len(last) == 1
    assert calls == 2
