"""SIGTERM on a `tidings run` process with a database and a running relay, on every multi-process
broker: the handler in flight finishes, its follow-up event leaves through the outbox before the
process exits 0, its delivery is acked, and nothing is left in the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conformance.harness import BrokerTarget
from tests.integration import brokers
from tests.integration.processes import terminate, tidings_command
from tests.integration.reliable_app import LongJob, LongJobDone
from tests.waiting import eventually, eventually_async
from tidings.envelope import Envelope
from tidings.store import outbox_status
from tidings.transport import connect

APP = "tests.integration.reliable_app:service"


@pytest.fixture(params=brokers.MULTI_PROCESS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
    async with request.param.target(tmp_path) as opened:
        yield opened


async def test_sigterm_drains_the_handler_and_the_relay_then_exits_zero(target: BrokerTarget, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'drainer.db'}"
    env = {
        **target.child_env,
        "RELIABLE_APP_BROKER": target.url,
        "RELIABLE_APP_DATABASE": database,
        "RELIABLE_APP_MARKS": str(tmp_path),
    }
    transport = await connect(target.url)
    try:
        downstream = await transport.subscribe("downstream", [LongJobDone.event_type])  # declared before
        # The service's group is declared before it starts: on RabbitMQ a queue is visible before its
        # bindings are made, so waiting for the child's queue to appear could still lose the publish.
        await (await transport.subscribe("drainer", [LongJob.event_type])).close()
        async with tidings_command("run", APP, env=env) as child:
            job = Envelope.wrap(LongJob(n=1), source="test")
            await transport.publish([job])
            await eventually(lambda: (tmp_path / "started-1").exists(), "the handler started", within=60)
            assert await terminate(child, within=30) == 0
        assert (tmp_path / "finished-1").exists(), "SIGTERM cut the handler short"
        assert (await outbox_status(database)).pending == 0, "the relay left the follow-up in the outbox"
        async with asyncio.timeout(30):
            delivery = await anext(aiter(downstream))
        assert (delivery.envelope().type, delivery.envelope().causationid) == (LongJobDone.event_type, job.id)
        await delivery.ack()
        # acked before the exit (RabbitMQ's management API samples its counts: poll, with a deadline)
        await eventually_async(
            transport.backlog, lambda backlog: backlog.get("drainer") == 0, "the drained delivery acked", within=20
        )
        await downstream.close()
    finally:
        await transport.close()
