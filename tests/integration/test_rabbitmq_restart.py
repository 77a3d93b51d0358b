"""The real broker restarts (`scripts/services.sh restart rabbitmq`) under a running producer and
consumer: every event whose `publish` returned is consumed afterwards, and neither side needs
restarting. This stops the shared broker for everyone for a few seconds: one short test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.conformance.events import PING
from tests.integration.rabbitmq_support import amqp_url, fresh_vhost, run_traffic
from tidings.transport import connect

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


async def restart_rabbitmq() -> None:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "scripts" / "services.sh"),
        "restart",
        "rabbitmq",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, out.decode()


async def test_a_broker_restart_loses_no_confirmed_event_and_both_sides_recover() -> None:
    if os.geteuid() != 0:
        pytest.skip("scripts/services.sh restart needs root")
    async with fresh_vhost() as vhost:
        url = amqp_url(vhost, "reconnect_max=1")
        publisher, consumer = await connect(url), await connect(url)
        try:
            subscription = await consumer.subscribe("survivors", [PING], prefetch=16)
            traffic = await run_traffic(publisher, subscription, restart_rabbitmq, before=1.0, after=2.0)
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
