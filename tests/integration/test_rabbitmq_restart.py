"""A RabbitMQ server restarts under a running producer and consumer: every event whose `publish`
returned is consumed afterwards, and neither side needs restarting.

The restarted server is a private node of this test's own (its own name, ports and data), never
the shared one on 5672: a developer's `make test` must not stop a server something else uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.chaos.rabbit import PrivateRabbit
from tests.conformance.events import PING
from tests.integration.rabbitmq_support import run_traffic
from tidings.transport import connect

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    node = PrivateRabbit(
        base=Path("/tmp/tidings-test-rabbitmq"),
        node="tidings-restart-test@localhost",
        port=5674,
        dist_port=25674,
        management_port=15674,
    )
    await node.start(fresh=True)
    try:
        yield node
    finally:
        await node.stop()


async def test_a_broker_restart_loses_no_confirmed_event_and_both_sides_recover(private_rabbit: PrivateRabbit) -> None:
    url = f"{private_rabbit.broker_url()}&reconnect_max=1"

    async def restart() -> None:
        await private_rabbit.restart()

    publisher, consumer = await connect(url), await connect(url)
    try:
        subscription = await consumer.subscribe("survivors", [PING], prefetch=16)
        traffic = await run_traffic(publisher, subscription, restart, before=1.0, after=2.0)
        await subscription.close()
    finally:
        await publisher.close()
        await consumer.close()

    print(
        f"published {len(traffic.published)} ({traffic.published_after} after the restart began, "
        f"{traffic.publish_failures} publish calls failed), consumed {len(traffic.consumed)}"
    )
    assert len(traffic.published) > 100
    assert not traffic.lost, f"{len(traffic.lost)} of {len(traffic.published)} confirmed events never arrived"
    assert traffic.published_after >= 50, "the publisher did not recover"
    assert traffic.consumed_after > 0, "the consumer did not recover"
