"""The relay's loop as a supervisor runs it: `open`, `run` (survives any number of failed cycles,
returns on `request_stop`, raises when the loop itself breaks), `close`. A SQLite file, no broker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from sqlalchemy import select

from tidings.errors import ConfigurationError
from tidings.retry import RetryPolicy
from tidings.store import Store
from tidings.store.relay import Relay, RelayConfig
from tidings.store.tables import relay as relay_table
from tidings.transport.base import Transport

NO_WAIT = RelayConfig(poll_interval=0.01, backoff=RetryPolicy(base=0.0, max_delay=0.0))


async def _eventually(condition: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls a plain condition
            await asyncio.sleep(0.001)


def _failing(relay: Relay, error: BaseException) -> None:
    async def broken() -> int:
        raise error

    relay._cycle = broken  # type: ignore[method-assign]  # the loop's cycle


async def test_the_relay_survives_thousands_of_failed_cycles_in_a_row(store: Store, broker: Transport) -> None:
    """About 1,000 failures in a row made `RetryPolicy.delay` overflow in the error handler, which
    ended the relay's task: a relay outliving a long database outage stopped publishing for good."""
    relay = Relay(store, broker, source="worker", config=NO_WAIT)
    _failing(relay, ConnectionError("database unreachable (simulated)"))
    await relay.open()
    task = asyncio.create_task(relay.run())
    try:
        await _eventually(lambda: relay.stats["failures"] >= 1_500 or task.done())
        assert not task.done(), task
    finally:
        relay.request_stop()
        async with asyncio.timeout(5):
            await task  # returns normally: the stop was requested
        await relay.close()


async def test_run_returns_on_request_stop_and_at_once_if_it_was_requested(store: Store, broker: Transport) -> None:
    relay = Relay(store, broker, source="worker", config=RelayConfig(poll_interval=30))
    await relay.open()
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.05)  # idle: waiting for a wake-up
    relay.request_stop()
    async with asyncio.timeout(2):
        await task
    async with asyncio.timeout(2):
        await relay.run()  # still stopped: nothing to do
    await relay.close()


async def test_run_raises_when_the_loop_itself_breaks_and_can_run_again(store: Store, broker: Transport) -> None:
    relay = Relay(store, broker, source="worker", config=RelayConfig(poll_interval=0.01, backoff=_Broken()))
    await relay.open()
    _failing(relay, ConnectionError("down"))
    with pytest.raises(ArithmeticError):
        await relay.run()
    relay.config = NO_WAIT  # a supervisor restarts it: the loop runs again
    task = asyncio.create_task(relay.run())
    await _eventually(lambda: relay.stats["failures"] >= 3)
    relay.request_stop()
    await task
    await relay.close()


async def test_one_run_at_a_time(store: Store, broker: Transport) -> None:
    relay = Relay(store, broker, source="worker", config=RelayConfig(poll_interval=30))
    await relay.open()
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.05)
    with pytest.raises(ConfigurationError):
        await relay.run()
    relay.request_stop()
    await task
    await relay.close()


async def test_close_releases_the_sqlite_lease(store: Store, broker: Transport) -> None:
    relay = Relay(store, broker, source="worker", config=RelayConfig(poll_interval=30))
    await relay.open()
    assert await relay.run_once() == 0  # takes the lease
    async with store.session() as session, session.begin():
        assert (await session.execute(select(relay_table.c.lease_until))).scalar_one() > 0
    await relay.close()
    async with store.session() as session, session.begin():
        row = (await session.execute(select(relay_table.c.owner, relay_table.c.lease_until))).one()
    assert (row.owner, row.lease_until) == (relay.owner, 0.0)


class _Broken(RetryPolicy):
    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        raise ArithmeticError("the error handler itself fails")
