"""Dead letters keep why and after how many attempts; replay gives them back, purge drops them."""

from __future__ import annotations

from tests.conformance.events import PING, event_id, ping
from tests.conformance.harness import Broker, until
from tidings.transport import DeadLetter


async def test_dead_letter_keeps_reason_and_attempts_and_replay_redelivers(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "g", [PING])
    await broker.consumer(transport, "bystander", [PING])
    envelope = ping(1, key="k")
    await transport.publish([envelope])

    (first,) = await consumer.take(1)
    await first.retry(0)
    (second,) = await consumer.take(1)
    assert second.attempt == 2
    await second.dead_letter("card declined: insufficient funds")

    letters: list[DeadLetter] = await until(lambda: transport.dead_letters("g"), lambda found: len(found) == 1)
    (letter,) = letters
    assert letter.group == "g"
    assert letter.reason == "card declined: insufficient funds"
    assert letter.attempts == 2
    assert letter.event_id == envelope.id
    assert letter.type == PING
    assert letter.body == envelope.data
    assert await transport.dead_letters("bystander") == []
    await until(transport.backlog, lambda b: b.get("g") == 0)

    assert await transport.replay("g", [letter.id]) == 1
    (replayed,) = await consumer.take(1)
    assert event_id(replayed) == envelope.id
    await replayed.ack()
    assert await transport.dead_letters("g") == []
    await until(transport.backlog, lambda b: b.get("g") == 0)


async def test_purge_removes_dead_letters(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "g", [PING])
    await transport.publish([ping(1), ping(2), ping(3)])
    deliveries = await consumer.take(3)
    for delivery in deliveries:
        await delivery.dead_letter(f"bad {event_id(delivery)}")
    letters = await until(lambda: transport.dead_letters("g"), lambda found: len(found) == 3)
    assert [letter.reason for letter in letters] == sorted(letter.reason for letter in letters)  # oldest first

    assert await transport.purge("g", [letters[0].id]) == 1
    remaining = await until(lambda: transport.dead_letters("g"), lambda found: len(found) == 2)
    assert {letter.id for letter in remaining} == {letters[1].id, letters[2].id}

    assert await transport.purge("g") == 2
    assert await transport.dead_letters("g") == []
    await until(transport.backlog, lambda b: b.get("g") == 0)
    await consumer.assert_idle(0.3)


async def test_replay_all(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "g", [PING])
    envelopes = [ping(1), ping(2)]
    await transport.publish(envelopes)
    for delivery in await consumer.take(2):
        await delivery.dead_letter("later")
    await until(lambda: transport.dead_letters("g"), lambda found: len(found) == 2)

    assert await transport.replay("g") == 2
    again = await consumer.take(2)
    assert sorted(event_id(d) for d in again) == sorted(e.id for e in envelopes)
    for delivery in again:
        await delivery.ack()
    assert await transport.dead_letters("g") == []
