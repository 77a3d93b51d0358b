"""`Service.run()` moves the heap it started with out of the garbage collector's way (ADR 0038):
objects alive once it started are frozen, what it allocates afterwards is not; with
`freeze_heap=False`, and for `start()`, the collector is left as it was."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Iterator

import pytest

from tests.conformance.events import Ping, ping
from tests.waiting import eventually
from tidings.context import Context
from tidings.service import Service


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen, so the rest of the session is unaffected."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def pinging_service(handled: asyncio.Event, name: str) -> Service:
    """A service on a memory broker of its own (`name`): a broker is bound to its test's loop."""
    service = Service("frozen-heap", broker=f"memory://{name}")

    @service.on(Ping)
    async def handle(event: Ping, ctx: Context) -> None:
        handled.set()

    return service


async def run_until_handled(service: Service, handled: asyncio.Event, **options: bool) -> int:
    """Run `service` as its process would, publish one event, wait until it is handled, then
    SIGTERM it; returns how many objects are frozen once `run` returned."""
    running = asyncio.create_task(service.run(**options))
    await eventually(lambda: service._transport is not None, "run() connected")
    await service.transport.publish([ping(1)])
    await asyncio.wait_for(handled.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)  # after a start still under way, too, `run` stops once started
    await asyncio.wait_for(running, 10)
    return gc.get_freeze_count()


async def test_run_freezes_what_was_alive_once_the_service_started() -> None:
    handled = asyncio.Event()
    service = pinging_service(handled, "freezing")
    assert await run_until_handled(service, handled) > 10_000  # a started service's modules and classes, at least


async def test_run_without_freezing_and_start_leave_the_collector_alone() -> None:
    handled = asyncio.Event()
    assert await run_until_handled(pinging_service(handled, "not-freezing"), handled, freeze_heap=False) == 0

    handled = asyncio.Event()
    async with pinging_service(handled, "started") as service:
        await service.transport.publish([ping(1)])
        await asyncio.wait_for(handled.wait(), 10)
        assert gc.get_freeze_count() == 0
