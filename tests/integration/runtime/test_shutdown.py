"""Stopping a service: handlers still running after `drain_timeout` are cancelled before anything
they use is closed, their deliveries come back, and a start that fails leaves no signal handler."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.conformance.events import Ping, ping
from tidings.context import Context
from tidings.errors import ConfigurationError
from tidings.service import Service


async def test_a_handler_past_the_drain_timeout_is_cancelled_and_its_delivery_returns(tmp_path: Path) -> None:
    broker, database = f"sqlite:///{tmp_path}/broker.db", f"sqlite:///{tmp_path}/svc.db"
    entered = asyncio.Event()
    seen: list[str] = []
    stuck = Service("stuck", broker=broker, database=database, drain_timeout=0.2)

    @stuck.on(Ping)
    async def hang(event: Ping, ctx: Context) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # the unit of work is still usable here: nothing was closed under the handler
            seen.append("cancelled with the session open" if ctx.session.is_active else "cancelled late")
            raise

    async with stuck:
        await stuck.transport.publish([ping(1)])
        await asyncio.wait_for(entered.wait(), 10)
    assert seen == ["cancelled with the session open"]

    handled: list[int] = []
    again = Service("stuck", broker=broker, database=database)

    @again.on(Ping)
    async def handle(event: Ping, ctx: Context) -> None:
        handled.append(event.n)

    async with again:  # the unsettled delivery is redelivered (its lease was released or expires)
        deadline = asyncio.get_running_loop().time() + 60
        while handled != [1]:
            assert asyncio.get_running_loop().time() < deadline, handled
            await asyncio.sleep(0.05)


async def test_a_start_that_fails_leaves_no_signal_handler_behind() -> None:
    service = Service("misconfigured", broker="nosuch://broker")
    with pytest.raises(ConfigurationError):
        await service.run()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
