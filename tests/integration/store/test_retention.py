"""Inbox retention on a real database: what `prune_once` deletes, and `run` outliving errors."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy import func, select

from tests.integration.store.helpers import eventually
from tidings.store import Store, inbox
from tidings.store.retention import InboxRetention
from tidings.store.tables import inbox as inbox_table


async def _claim_ancient(store: Store, *event_ids: str, age: float = 8 * 86400) -> None:
    async with store.session() as session, session.begin():
        for event_id in event_ids:
            values = {
                "consumer_group": "worker",
                "source": "test",
                "event_id": event_id,
                "claimed_at": time.time() - age,
            }
            await session.execute(inbox_table.insert().values(values))


async def test_prune_removes_inbox_ids_past_the_retention(store: Store) -> None:
    async with store.session() as session, session.begin():
        await inbox.claim(session, "worker", "test", "recent")
    await _claim_ancient(store, "ancient")
    assert await InboxRetention(store).prune_once() == 1
    async with store.session() as session, session.begin():
        assert await inbox.contains(session, "worker", "recent")
        assert not await inbox.contains(session, "worker", "ancient")


async def test_prune_once_removes_a_backlog_in_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tidings.store.retention.CHUNK", 3)
    await _claim_ancient(store, *(f"old-{n}" for n in range(8)))
    await _claim_ancient(store, "young", age=60)
    retention = InboxRetention(store, retention=3600)
    assert await retention.prune_once() == 8
    assert retention.pruned == 8
    async with store.session() as session, session.begin():
        assert (await session.execute(select(func.count()).select_from(inbox_table))).scalar_one() == 1


async def test_run_prunes_every_interval_and_outlives_database_errors(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    retention = InboxRetention(store, interval=0.05)
    calls = 0
    real = inbox.prune

    async def flaky(*args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("DELETE", {}, Exception("database is down (simulated)"))
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("tidings.store.inbox.prune", flaky)
    task = asyncio.create_task(retention.run())
    try:
        await _claim_ancient(store, "first")
        await eventually(lambda: _is(calls >= 4), what="four rounds, one of them failing")
        await _claim_ancient(store, "second")
        await eventually(lambda: _is(retention.pruned == 2), what="both ids to go")
        assert not task.done()
        assert "pruning failed" in caplog.text
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert any(record.levelno == logging.WARNING for record in caplog.records)


async def _is(value: bool) -> bool:
    return value


async def test_run_lets_anything_but_a_database_error_end_it(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    async def bug(*_args: object, **_kwargs: object) -> int:
        raise TypeError("a bug, not an outage")

    monkeypatch.setattr("tidings.store.inbox.prune", bug)
    with pytest.raises(TypeError):
        await asyncio.wait_for(InboxRetention(store, interval=0.05).run(), 5)  # for the supervisor to handle
