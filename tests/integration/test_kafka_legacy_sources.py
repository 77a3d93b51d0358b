"""Legacy sources on the real Kafka: a topic of plain-JSON records, read by the group's own
legacy consumer group, whose records become the service's events (forwarded to the events
topic), are ignored, or are refused; records written before the service first started are
translated too, refused and malformed records are dead letters that keep their origin, and
replay returns them to the source topic, where the translation runs again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.conformance.harness import until
from tests.integration.kafka_support import BOOTSTRAP, fresh_prefix, kafka_url
from tests.integration.legacy_billing import PaymentDue, billing_service, to_payment
from tidings.envelope import Envelope
from tidings.legacy import LegacySource, Translation
from tidings.service import Service
from tidings.transport import connect
from tidings.transport.kafka.legacy import legacy_group

pytestmark = pytest.mark.kafka


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with fresh_prefix("tidings-legacy") as prefix:
        yield prefix


async def put(topic: str, *bodies: dict[str, Any] | bytes) -> None:
    """Produce records the way a legacy publisher does: plain JSON, no headers, no key."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for body in bodies:
            await producer.send_and_wait(topic, body if isinstance(body, bytes) else json.dumps(body).encode())
    finally:
        await producer.stop()


def billing(
    prefix: str, source: LegacySource, *, database: str | None = None
) -> tuple[Service, list[tuple[PaymentDue, Envelope]]]:
    return billing_service(kafka_url(prefix), source, database=database)


async def declared(prefix: str, source: LegacySource) -> None:
    """Declare the group once (a new group receives what is published after it subscribed)."""
    async with await connect(kafka_url(prefix), legacy=[source]) as transport:
        await (await transport.subscribe("billing", [PaymentDue.event_type])).close()


def count(handled: list[Any]) -> Any:
    return lambda: asyncio.sleep(0, len(handled))


async def test_records_written_before_the_service_started_and_while_it_runs_are_translated(prefix: str) -> None:
    topic = f"{prefix}billing"
    source = LegacySource(topic, translate=to_payment, source="urn:legacy:billing", group="billing")
    await put(topic, *({"kind": "invoice", "invoice_no": n, "total": "12.50"} for n in range(5)))  # before anything
    await declared(prefix, source)
    service, handled = billing(prefix, source)
    async with service:
        await until(count(handled), lambda found: found == 5)
        await put(topic, {"kind": "invoice", "invoice_no": 99, "total": "1.00"})
        await until(count(handled), lambda found: found == 6)
        assert await service.transport.dead_letters("billing") == []
    assert sorted(event.invoice for event, _ in handled) == sorted([*(f"inv-{n}" for n in range(5)), "inv-99"])
    event, envelope = next(item for item in handled if item[0].invoice == "inv-0")
    assert event.cents == 1250
    assert (envelope.type, envelope.source, envelope.subject) == (PaymentDue.event_type, "urn:legacy:billing", "inv-0")
    assert envelope.partitionkey == "inv-0"
    assert envelope.time is not None  # the record's timestamp


async def test_a_record_forwarded_again_after_a_crash_before_the_commit_is_handled_once(
    prefix: str, tmp_path: Path
) -> None:
    """Forward, then commit: a reader that dies in between forwards the record again on restart.
    Simulated by moving the legacy group's committed offset back; the event id is the same, so
    the service's inbox absorbs the second copy."""
    topic = f"{prefix}billing"
    source = LegacySource(topic, translate=to_payment, group="billing")
    await declared(prefix, source)
    await put(topic, {"kind": "invoice", "invoice_no": 1, "total": "1.00"})
    database = f"sqlite+aiosqlite:///{tmp_path / 'billing.db'}"
    service, handled = billing(prefix, source, database=database)
    async with service:
        await until(count(handled), lambda found: found == 1)
    await rewind(f"{prefix}{legacy_group('billing')}", topic)
    service, again = billing(prefix, source, database=database)
    async with service:
        await until(lambda: asyncio.sleep(0, service.stats["duplicates"]), lambda found: found == 1)
    assert again == []
    assert [event.invoice for event, _ in handled] == ["inv-1"]


async def rewind(group_id: str, topic: str) -> None:
    """Commit offset 0 for `group_id` on `topic`: as if nothing had been committed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 0})
    finally:
        await consumer.stop()


async def test_ignored_refused_and_malformed_records_and_replay_to_the_source_topic(prefix: str) -> None:
    topic = f"{prefix}billing"
    source = LegacySource(topic, translate=to_payment, group="billing")
    await declared(prefix, source)
    await put(topic, {"kind": "credit-note", "invoice_no": 1, "total": "3.00"}, {"kind": "heartbeat"}, b"{not json")
    service, handled = billing(prefix, source)
    async with service:
        letters = await until(lambda: service.transport.dead_letters("billing"), lambda found: len(found) == 2)
    refused, malformed = letters
    assert "legacy message refused: kind 'credit-note' is not an invoice" in refused.reason
    assert f"the legacy source {topic!r} translates with to_payment" in refused.reason
    assert json.loads(refused.body)["kind"] == "credit-note"
    assert "body is not JSON" in malformed.reason
    assert malformed.body == b"{not json"
    assert handled == []  # the heartbeat was ignored: committed, no event, no dead letter

    def fixed(document: Any) -> Translation:  # the fix: credit notes are negative payments
        translated = to_payment({**document, "kind": "invoice"})
        assert isinstance(translated, PaymentDue)
        return translated.model_copy(update={"cents": -translated.cents})

    service, handled = billing(prefix, LegacySource(topic, translate=fixed, group="billing"))
    async with service:
        assert await service.transport.replay("billing", [refused.id]) == 1  # back to the topic
        await until(count(handled), lambda found: found == 1)
        (left,) = await service.transport.dead_letters("billing")
    assert handled[0][0] == PaymentDue(invoice="inv-1", cents=-300)
    assert left.id == malformed.id


async def test_a_dead_letter_of_a_legacy_topic_keeps_its_origin(prefix: str) -> None:
    topic = f"{prefix}billing"
    source = LegacySource(topic, translate=to_payment, group="billing")
    await declared(prefix, source)
    await put(topic, {"kind": "refund"})
    async with await connect(kafka_url(prefix), legacy=[source]) as transport:
        subscription = await transport.subscribe("billing", [PaymentDue.event_type])
        try:
            (letter,) = await until(lambda: transport.dead_letters("billing"), lambda found: len(found) == 1)
        finally:
            await subscription.close()
    reader = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest")
    await reader.start()
    try:
        tp = TopicPartition(f"{prefix}dlq.billing", 0)
        reader.assign([tp])
        record = await asyncio.wait_for(reader.getone(), 30)
    finally:
        await reader.stop()
    headers = dict(record.headers)
    assert headers["tidings-origin"] == f"{topic}/0/0".encode()
    assert headers["tidings-legacy-topic"] == topic.encode()
    assert "legacy message refused: kind 'refund' is not an invoice" in letter.reason
