"""A service keeps one PostgreSQL connection per concurrent handler instead of reconnecting.

SQLAlchemy closes an overflow connection when it is returned, so a pool smaller than the
handler concurrency reconnects (TCP, TLS, authentication) for a share of all events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.integration.store.conftest import postgres_database
from tests.integration.store.helpers import eventually
from tidings.context import Context
from tidings.events import Event
from tidings.service import Service


class Tick(Event, type="test.pool.tick", version=1):
    n: int


@pytest.mark.postgres
async def test_concurrent_handlers_reuse_their_connections(tmp_path: Path) -> None:
    concurrency, waves = 12, 4
    backends: set[int] = set()
    async with postgres_database() as database:
        service = Service(
            "pool", broker=f"sqlite:///{tmp_path / 'broker.db'}", database=database, concurrency=concurrency
        )

        @service.on(Tick)
        async def handle(event: Tick, ctx: Context) -> None:
            backends.add((await ctx.session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await asyncio.sleep(0.05)  # hold the connection: every handler of the wave runs at once

        async with service:
            for wave in range(1, waves + 1):  # between waves every connection goes back to the pool
                await service.publish(*(Tick(n=n) for n in range(2 * concurrency)))

                async def wave_handled(expected: int = wave * 2 * concurrency) -> bool:
                    return service.stats["handled"] == expected

                await eventually(wave_handled, within=30, what=f"wave {wave} handled")
    # every handler's connection and the relay's, each opened once for the whole run
    assert len(backends) <= concurrency + 2, f"{len(backends)} connections for {concurrency} handlers"
