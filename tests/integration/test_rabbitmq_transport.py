"""RabbitMQ specifics the conformance suite cannot see: the topology on the broker, confirms and
nacks, delays longer than the largest bucket, and configuration errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from urllib.parse import quote

import aio_pika
import httpx
import pytest

from tests.conformance.events import PING, PONG, event_id, ping
from tests.conformance.harness import until
from tests.integration.rabbitmq_support import AUTH, MANAGEMENT, amqp_url, queue_counts
from tidings.errors import ConfigurationError, PublishError, TransportError
from tidings.transport import Delivery, Subscription, connect
from tidings.transport.rabbitmq import RabbitTransport
from tidings.transport.rabbitmq.codec import DELAY_LEFT, encode

pytestmark = pytest.mark.rabbitmq


async def queues(vhost: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=AUTH) as client:
        response = await client.get(f"/api/queues/{quote(vhost, safe='')}")
        response.raise_for_status()
        return {queue["name"]: queue for queue in response.json()}


async def bindings(vhost: str) -> set[tuple[str, str, str]]:
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=AUTH) as client:
        response = await client.get(f"/api/bindings/{quote(vhost, safe='')}")
        response.raise_for_status()
        return {(b["source"], b["routing_key"], b["destination"]) for b in response.json() if b["source"]}


async def test_topology_is_durable_quorum_and_idempotent(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    try:
        for _ in range(2):  # declaring again changes nothing
            subscription = await transport.subscribe("billing", [PING, PONG])
            await subscription.close()
        subscription = await transport.subscribe("billing", [PING])
        iterator = aiter(subscription)
        await transport.publish([ping(1)])
        delivery = await asyncio.wait_for(anext(iterator), 10)
        await delivery.retry(0.05)  # declares the 80 ms delay bucket
        await (await asyncio.wait_for(anext(iterator), 10)).ack()
        await subscription.close()
    finally:
        await transport.close()

    found = await queues(vhost)
    group, dead, delay = found["tidings:billing"], found["tidings:billing:dlq"], found["tidings:billing:delay:80"]
    assert (group["durable"], group["type"]) == (True, "quorum")
    assert group["arguments"] == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "tidings:billing:dlq",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert (dead["durable"], dead["type"]) == (True, "classic")
    assert delay["arguments"] == {
        "x-queue-type": "quorum",
        "x-message-ttl": 80,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "tidings:billing",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert await bindings(vhost) == {
        ("tidings.events", PING, "tidings:billing"),
        ("tidings.events", PONG, "tidings:billing"),
    }


async def test_classic_queues_and_a_namespace_by_option(vhost: str) -> None:
    transport = await connect(amqp_url(vhost, "queue_type=classic&namespace=shop"))
    try:
        await (await transport.subscribe("billing", [PING])).close()
    finally:
        await transport.close()
    found = await queues(vhost)
    assert found["shop:billing"]["type"] == "classic"
    assert ("shop.events", PING, "shop:billing") in await bindings(vhost)


async def test_changing_the_queue_options_of_an_existing_group_is_a_configuration_error(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    ordered = await connect(amqp_url(vhost, "ordering=key"))
    try:
        await (await transport.subscribe("billing", [PING])).close()
        with pytest.raises(ConfigurationError, match="already exists with other arguments"):
            await ordered.subscribe("billing", [PING])
        await (await ordered.subscribe("other", [PING])).close()  # the transport still works
    finally:
        await transport.close()
        await ordered.close()


async def test_an_event_no_group_wants_is_confirmed_and_dropped(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    try:
        await transport.publish([ping(1), ping(2)])  # returns: the broker confirmed both
        assert await transport.backlog() == {}
        assert sum((await queue_counts(vhost)).values()) == 0, "an unwanted event was kept in some queue"
        late = await transport.subscribe("late", [PING])  # a group that subscribes afterwards gets none of it
        try:
            assert await _first_within(late, 0.5) is None
        finally:
            await late.close()
    finally:
        await transport.close()


async def _first_within(subscription: Subscription, seconds: float) -> Delivery | None:
    iterator = aiter(subscription)
    try:
        async with asyncio.timeout(seconds):  # a bounded "nothing arrives" window after a confirmed publish
            return await anext(iterator)
    except TimeoutError:
        return None


async def _policy_of(vhost: str, queue: str) -> str | None:
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=AUTH) as client:
        response = await client.get(f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
        response.raise_for_status()
        policy = response.json().get("effective_policy_definition")
        return "full" if policy and policy.get("max-length") == 2 else None


async def test_a_nack_from_the_broker_is_a_publish_error(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    try:
        await (await transport.subscribe("full", [PING])).close()
        policy = {"pattern": "^tidings:full$", "definition": {"max-length": 2}, "apply-to": "queues"}
        async with httpx.AsyncClient(base_url=MANAGEMENT, auth=AUTH) as client:
            response = await client.put(f"/api/policies/{quote(vhost, safe='')}/full", json=policy)
            response.raise_for_status()
        await until(lambda: _policy_of(vhost, "tidings:full"), lambda applied: applied == "full", within=20)
        with pytest.raises(PublishError, match="not confirmed by the broker"):  # noqa: PT012
            for _ in range(20):  # quorum queues notice the overflow a little late
                await transport.publish([ping(n) for n in range(5)])  # reject-publish: nacked
    finally:
        await transport.close()


async def test_a_delay_longer_than_a_bucket_waits_again_without_being_handed_out(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    try:
        subscription = await transport.subscribe("g", [PING])
        envelope = ping(1)
        properties, body = encode(envelope)
        properties.headers = {**(properties.headers or {}), DELAY_LEFT: 300}
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with await aio_pika.connect(amqp_url(vhost)) as raw:  # as if back from the largest bucket
            channel = await raw.channel()
            underlay = await channel.get_underlay_channel()
            await underlay.basic_publish(body, routing_key="tidings:g", properties=properties)
        delivery = await asyncio.wait_for(anext(aiter(subscription)), 10)
        assert loop.time() - started >= 0.3
        assert event_id(delivery) == envelope.id
        await delivery.ack()
        await subscription.close()
    finally:
        await transport.close()


async def test_an_unreachable_broker_fails_at_open() -> None:
    with pytest.raises(TransportError, match="cannot connect"):
        await connect("amqp://guest:guest@127.0.0.1:1/")


async def test_legacy_mappings_from_the_constructor_and_the_url_add_up(vhost: str) -> None:
    from tidings.transport.rabbitmq import LegacyMapping

    extra = LegacyMapping(name="billing_events", types={"Billed": "shop.billed"})
    transport = await RabbitTransport.open(amqp_url(vhost, "legacy_queue=order_events"), legacy=[extra])
    try:
        assert [mapping.queue for mapping in transport.config.legacy] == ["billing_events", "order_events"]
        await (await transport.subscribe("g", [PING])).close()
        assert {"order_events", "billing_events"} <= set(await queues(vhost))
    finally:
        await transport.close()


def test_a_missing_aio_pika_names_the_extra_to_install() -> None:
    code = "import sys; sys.modules['aio_pika'] = None; import tidings.transport.rabbitmq"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "pip install 'tidings[rabbitmq]'" in result.stderr
