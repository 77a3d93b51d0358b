"""Kafka refuses a record for good when it is too large once its headers count (an event just under
Tidings' own 1 MiB data limit): the transport says which envelope (`EnvelopeRefused`), so the relay
parks that one row and publishes the rest instead of retrying the batch forever."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conformance.events import PING, Ping, ping
from tests.integration.kafka_support import FAST, fresh_prefix, kafka_url
from tidings.envelope import MAX_MESSAGE_BYTES, Envelope
from tidings.errors import EnvelopeRefused
from tidings.service import Service
from tidings.store import Store, parked
from tidings.transport import connect

pytestmark = pytest.mark.kafka


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_prefix("kafka-refusal") as prefix:
        yield kafka_url(prefix, FAST)


def just_under_the_limit(source: str = "test") -> Envelope:
    """Data under Tidings' 1 MiB limit; with its headers over Kafka's default record limit."""
    event = Ping(n=99, pad="x" * (MAX_MESSAGE_BYTES - 64))
    return Envelope.wrap(event, source=source, correlationid="c" * 150)


async def test_an_envelope_kafka_refuses_for_good_is_named(url: str) -> None:
    transport = await connect(url)
    try:
        big = just_under_the_limit()
        with pytest.raises(EnvelopeRefused) as refused:
            await transport.publish([ping(1), big, ping(2)])
    finally:
        await transport.close()
    assert refused.value.envelope_id == big.id
    assert "MessageSizeTooLarge" in refused.value.reason


async def test_the_relay_parks_the_refused_row_and_the_rows_behind_it_flow(url: str, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/svc.db"
    service = Service(f"refusal-{uuid.uuid4().hex[:8]}", broker=url, database=database)
    observer = await connect(url)
    seen = await observer.subscribe("observer", [PING])
    async with service:
        async with service.transaction() as ctx:
            ctx.publish(Ping(n=1))
        async with service.transaction() as ctx:  # its own commit: the relay sends it on its own or with n=3
            ctx.outgoing.append(just_under_the_limit(service.name))
        async with service.transaction() as ctx:
            ctx.publish(Ping(n=3))
        numbers: list[int] = []
        async for delivery in seen:
            numbers.append(Ping.model_validate_json(delivery.envelope().data).n)
            await delivery.ack()
            if 3 in numbers:
                break
    store = await Store.open(database, migrate=False)
    async with store.session() as session, session.begin():
        rows = await parked.list(session)
    await store.close()
    await observer.close()
    assert sorted(set(numbers)) == [1, 3]  # the rows before a refused one may go out twice: inboxes absorb them
    [row] = rows
    assert "MessageSizeTooLarge" in row.reason
