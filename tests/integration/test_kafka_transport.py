"""What the Kafka transport promises beyond the conformance suite, on the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.conformance.events import PING, PONG, Ping, event_id, event_of, ping, pong
from tests.conformance.harness import Broker, BrokerTarget, Consumer
from tests.integration.kafka_support import BOOTSTRAP, fresh_prefix, kafka_url
from tidings.context import Context
from tidings.envelope import Envelope, to_structured
from tidings.errors import PermanentError, PublishError, TransportError
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport import connect

pytestmark = pytest.mark.kafka


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with fresh_prefix("kafka-transport") as prefix:
        yield prefix


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[Broker]:
    broker = Broker(BrokerTarget(kafka_url(prefix)))
    try:
        yield broker
    finally:
        await broker.aclose()


async def read_raw(topic: str, count: int) -> list:
    """`count` records from the start of `topic`, read with a plain aiokafka consumer."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(10):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_publish_uses_the_cloudevents_kafka_binding_and_the_partition_key(broker: Broker, prefix: str) -> None:
    transport = await broker.connect()
    envelopes = [ping(1, key="order-7"), pong(2).with_changes(partitionkey="order-7"), ping(3, key="order-7")]
    await transport.publish(envelopes)

    records = await read_raw(f"{prefix}events", 3)
    assert len({record.partition for record in records}) == 1, "one key, one partition, whatever the type"
    assert [record.offset for record in records] == sorted(record.offset for record in records)
    for record, envelope in zip(records, envelopes, strict=True):
        headers = {key: value.decode() for key, value in record.headers}
        assert record.key == b"order-7"
        assert record.value == envelope.data
        assert headers["content-type"] == "application/json"
        assert headers["ce_id"] == envelope.id
        assert headers["ce_type"] == envelope.type
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_source"] == envelope.source
        assert headers["ce_partitionkey"] == "order-7"


async def test_one_key_stays_in_order_across_event_types(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "orders", [PING, PONG], prefetch=16)
    envelopes = []
    for n in range(10):
        make = ping(n, key="order-1") if n % 2 else pong(n).with_changes(partitionkey="order-1")
        envelopes.append(make)
    await transport.publish(envelopes)
    for envelope in envelopes:
        (delivery,) = await consumer.take(1)
        assert event_id(delivery) == envelope.id
        await consumer.assert_idle(0.05)  # the next of the key waits for this one
        await delivery.ack()


async def test_a_structured_mode_record_from_another_producer_is_delivered(broker: Broker, prefix: str) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "g", [PING])
    envelope = ping(5, key="k")
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        headers = [("content-type", b"application/cloudevents+json")]
        await producer.send_and_wait(f"{prefix}events", to_structured(envelope), key=b"k", headers=headers)
        await producer.send_and_wait(f"{prefix}events", to_structured(pong(6)), headers=headers)
    finally:
        await producer.stop()
    (delivery,) = await consumer.take(1)
    assert delivery.envelope().id == envelope.id
    assert event_of(delivery) == Ping(n=5, key="k")
    await delivery.ack()
    await consumer.assert_idle(0.3)  # the structured pong is not for this group


async def test_a_new_group_starts_at_the_end_of_the_topic(broker: Broker) -> None:
    transport = await broker.connect()
    await transport.publish([ping(1)])
    consumer = await broker.consumer(transport, "late", [PING])
    later = ping(2)
    await transport.publish([later])
    (delivery,) = await consumer.take(1)
    assert event_id(delivery) == later.id
    await delivery.ack()
    await consumer.assert_idle(0.3)


async def test_after_a_takeover_only_unsettled_records_come_back(broker: Broker) -> None:
    transport = await broker.connect()
    leaving = await broker.consumer(transport, "g", [PING])
    envelopes = [ping(n) for n in range(5)]
    await transport.publish(envelopes)  # keyless, one call: one partition, in order
    held, *done = await leaving.take(5)
    assert event_id(held) == envelopes[0].id
    for delivery in done:
        await delivery.ack()
    await leaving.close()

    staying = await broker.consumer(await broker.connect(), "g", [PING])
    (again,) = await staying.take(1)
    assert (event_id(again), again.attempt) == (envelopes[0].id, 2)
    await again.ack()
    await staying.assert_idle(0.5)
    assert (await transport.backlog())["g"] == 0


async def test_a_retry_delay_survives_a_takeover(broker: Broker) -> None:
    transport = await broker.connect()
    leaving = await broker.consumer(transport, "g", [PING])
    envelope = ping(1)
    await transport.publish([envelope])
    (first,) = await leaving.take(1)
    retried_at = time.monotonic()
    await first.retry(2.5)
    await leaving.close()

    staying = await broker.consumer(await broker.connect(), "g", [PING])
    (again,) = await staying.take(1)
    assert time.monotonic() - retried_at >= 2.5
    assert (event_id(again), again.attempt) == (envelope.id, 2)
    await again.ack()


async def test_consumers_of_a_group_handle_the_union_of_its_types(broker: Broker) -> None:
    first, second = await broker.connect(), await broker.connect()
    pings_only = await broker.consumer(first, "g", [PING], prefetch=32)
    pongs_too = await broker.consumer(second, "g", [PING, PONG], prefetch=32)
    envelopes = [pong(n).with_changes(partitionkey=f"key-{n}") for n in range(30)]  # spread over partitions
    await first.publish(envelopes)

    received: set[str] = set()

    async def drain(consumer: Consumer) -> None:
        while len(received) < len(envelopes):
            delivery = await consumer.poll(0.1)
            if delivery is not None:
                received.add(event_id(delivery))
                await delivery.ack()

    async with asyncio.timeout(15):
        await asyncio.gather(drain(pings_only), drain(pongs_too))
    assert received == {envelope.id for envelope in envelopes}


async def test_a_rebalance_waits_for_deliveries_in_flight(broker: Broker) -> None:
    transport = await broker.connect()
    first = await broker.consumer(transport, "g", [PING])
    await transport.publish([ping(n, key=f"key-{n}") for n in range(12)])
    (in_flight,) = await first.take(1)
    joining = asyncio.create_task(broker.consumer(await broker.connect(), "g", [PING]))
    await asyncio.sleep(0.8)  # sleep-ok: no public signal of a rebalance in progress
    await in_flight.ack()  # within revoke_grace: committed before the partitions move
    second = await joining

    seen = {event_id(in_flight)}
    async with asyncio.timeout(15):
        while len(seen) < 12:
            for consumer in (first, second):
                delivery = await consumer.poll(0.1)
                if delivery is not None:
                    assert event_id(delivery) not in seen, "redelivered although it was acked in time"
                    seen.add(event_id(delivery))
                    await delivery.ack()


async def test_an_oversized_record_raises_publish_error(broker: Broker) -> None:
    transport = await broker.connect()
    valid = ping(1)
    huge = Envelope(id="huge", source="test", type=PING, data=json.dumps({"n": 1, "pad": "x" * 2_000_000}).encode())
    with pytest.raises(PublishError):
        await transport.publish([valid, huge])


async def test_an_unreachable_broker_raises_transport_error() -> None:
    with pytest.raises(TransportError):
        await connect("kafka://127.0.0.1:1?request_timeout_ms=2000")


class Charge(Event, type="kafka-test.charge", version=1):
    account: str
    n: int

    def subject(self) -> str | None:
        return self.account


async def test_a_service_runs_on_kafka_with_retries_and_dead_letters(prefix: str) -> None:
    url = kafka_url(prefix)
    service = Service("billing", broker=url, retry=RetryPolicy(max_attempts=3, base=0.05, jitter=0))
    handled: list[tuple[str, int, int]] = []
    failures: dict[int, int] = {1: 1}  # n=1 fails once, then succeeds
    done = asyncio.Event()

    @service.on(Charge)
    async def charge(event: Charge, context: Context) -> None:
        if event.n == 2:
            raise PermanentError("card declined")
        if failures.get(event.n, 0) > 0:
            failures[event.n] -= 1
            raise RuntimeError("payment gateway timed out")
        handled.append((event.account, event.n, context.attempt))
        if len(handled) == 3:
            done.set()

    async with service:
        await service.publish(*(Charge(account="acct-1", n=n) for n in range(4)))
        async with asyncio.timeout(20):
            await done.wait()
        assert handled == [("acct-1", 0, 1), ("acct-1", 1, 2), ("acct-1", 3, 1)]  # in order, across a retry
        (letter,) = await service.transport.dead_letters("billing")
        assert letter.reason == "PermanentError: card declined"
        assert letter.attempts == 1


async def test_many_publishes_to_one_partition_at_once_all_get_through(broker: Broker, prefix: str) -> None:
    """Each `publish` queues its own batch, and a partition has one batch in flight at a time.
    aiokafka takes the time already waited off its budget again at every turn of that queue, so
    with a few hundred callers the late ones gave up with `KafkaTimeoutError` within seconds,
    long before the request timeout (the bad-input suite's burst of dead letters hit it)."""
    transport = await broker.connect()
    envelopes = [ping(n, key="one-key") for n in range(400)]
    await asyncio.gather(*(transport.publish([envelope]) for envelope in envelopes))
    records = await read_raw(f"{prefix}events", len(envelopes))
    assert len({record.partition for record in records}) == 1
    assert sorted(dict(record.headers)["ce_id"].decode() for record in records) == sorted(e.id for e in envelopes)
