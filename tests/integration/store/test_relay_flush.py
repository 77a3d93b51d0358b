"""A graceful stop publishes what was committed up to then: a script that publishes through its
outbox and stops at once must not leave its events behind until some later run."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tests.integration.store.helpers import receive
from tests.integration.store.shop import JobDone
from tidings.envelope import Envelope
from tidings.store import Store, outbox, outbox_status
from tidings.store.relay import Relay, RelayConfig
from tidings.transport.base import connect


async def test_stop_publishes_the_rows_committed_while_the_relay_was_idle(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/service.db"
    store = await Store.open(database)
    broker = await connect(f"memory://relay-flush-{uuid.uuid4().hex}")
    audit = await broker.subscribe("audit", [JobDone.event_type])
    relay = Relay(store, broker, source="worker", config=RelayConfig(poll_interval=60))
    cycles = 0
    first_cycle = relay._cycle  # the loop's cycle

    async def counted() -> int:
        nonlocal cycles
        published = await first_cycle()
        cycles += 1
        return published

    relay._cycle = counted  # type: ignore[method-assign]
    await relay.start()
    deadline = asyncio.get_running_loop().time() + 10
    while cycles == 0:  # the first, empty cycle is over: the relay now waits up to a minute
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    async with store.session() as session, session.begin():
        await outbox.add(session, [Envelope.wrap(JobDone(n=n), source="worker") for n in range(3)])
    await relay.stop()  # no wake-up: only the stop can send them now
    received = await receive(audit, 3, within=2)
    status = await outbox_status(database)
    await store.close()
    await audit.close()
    await broker.close()
    assert sorted(JobDone.model_validate_json(envelope.data).n for envelope in received) == [0, 1, 2]
    assert sum(source.pending for source in status.sources) == 0
