"""Run something until SIGTERM or SIGINT, or until its supervisor reports a task failed for good."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from tidings.runtime.heap import freeze_start_up_heap
from tidings.runtime.supervisor import Supervisor


async def run_until_stopped(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    supervisor: Supervisor,
    *,
    freeze_heap: bool,
) -> None:
    """`start()`, wait for a signal or a failure, then always `stop()`; raises the failure, if any.
    With `freeze_heap`, the heap alive once started is frozen (`freeze_start_up_heap`)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    waiters: list[asyncio.Task[object]] = []
    try:
        await start()
        if freeze_heap:
            freeze_start_up_heap()
        waiters = [asyncio.create_task(stopping.wait()), asyncio.create_task(supervisor.wait_failed())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if supervisor.failure is not None:
        raise supervisor.failure
