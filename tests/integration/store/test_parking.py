"""Poison outbox rows on a real database: a row the broker refuses for good, or one that no longer
decodes, is parked (moved to `tidings_outbox_parked` with its reason) and the rows behind it are
published in the same cycle; a transient failure parks nothing. Parked rows can be listed,
replayed into the outbox (at its end) and purged."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.store.helpers import receive
from tests.integration.store.shop import JobDone
from tidings.envelope import MAX_MESSAGE_BYTES, Envelope
from tidings.errors import EnvelopeRefused, PublishError
from tidings.retry import RetryPolicy
from tidings.store import Store, outbox, outbox_status
from tidings.store.relay import Relay, RelayConfig
from tidings.store.tables import outbox as outbox_table
from tidings.transport.base import Transport, connect

SOURCE = "worker"
FAST = RelayConfig(batch_size=50, poll_interval=0.05, backoff=RetryPolicy(base=0.02, max_delay=0.2))


def _done(numbers: Sequence[int], key: str = "k") -> list[Envelope]:
    return [Envelope.wrap(JobDone(n=n, key=key), source=SOURCE) for n in numbers]


def _oversized(number: int, key: str = "k", *, spare: int = -1) -> Envelope:
    """An envelope whose data is `spare` bytes under Tidings' limit (negative: over it), built by
    hand since `Envelope.wrap` refuses data over the limit."""
    [envelope] = _done([number], key)
    head = b'{"n":%d,"pad":"' % number
    return envelope.with_changes(data=head + b"x" * (MAX_MESSAGE_BYTES - spare - len(head) - 2) + b'"}')


async def _add(store: Store, envelopes: Sequence[Envelope]) -> None:
    async with store.session() as session, session.begin():
        await outbox.add(session, envelopes)


async def _count(store: Store, table: str) -> int:
    async with store.session() as session, session.begin():
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def _numbers(envelopes: Sequence[Envelope]) -> list[int]:
    return [JobDone.model_validate_json(envelope.data).n for envelope in envelopes]


def _first_seen(envelopes: Sequence[Envelope]) -> list[Envelope]:
    """The envelopes without repeats (a relay may publish a row twice), in first-seen order."""
    seen: dict[str, Envelope] = {}
    for envelope in envelopes:
        seen.setdefault(envelope.id, envelope)
    return list(seen.values())


@pytest.fixture
async def broker(any_broker_url: str) -> AsyncIterator[Transport]:
    transport = await connect(any_broker_url)
    try:
        yield transport
    finally:
        await transport.close()


@pytest.fixture
async def memory() -> AsyncIterator[Transport]:
    transport = await connect(f"memory://parking-{uuid.uuid4().hex}")
    try:
        yield transport
    finally:
        await transport.close()


class Refusing(Transport):
    """Publishes one envelope at a time through a real transport, as Kafka's producer does, and
    refuses for good an envelope in `refused` or over the limit once its headers count (Kafka's
    `max.request.size`): the envelopes before it in the batch were accepted."""

    def __init__(self, inner: Transport, refused: Collection[str] = ()) -> None:
        self.inner = inner
        self.refused = set(refused)
        self.calls = 0

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        for envelope in envelopes:
            size = len(envelope.data) + len(json.dumps(envelope.attributes()))
            if envelope.id in self.refused or size > MAX_MESSAGE_BYTES:
                raise EnvelopeRefused(envelope.id, f"MessageSizeTooLarge: the message is {size} bytes with headers")
            await self.inner.publish([envelope])

    open = subscribe = dead_letters = replay = purge = backlog = close = None  # type: ignore[assignment]


async def test_refused_outbox_row_is_parked_and_later_rows_flow(store: Store, broker: Transport) -> None:
    """An event just under Tidings' data limit that the broker refuses once headers count: the
    rows behind it, of its key and of another, go out in the same cycle."""
    audit = await broker.subscribe("audit", [JobDone.event_type])
    poison = _oversized(5, key="a", spare=10)
    good = _done(range(5), key="a") + _done(range(6, 9), key="a") + _done(range(9, 12), key="b")
    await _add(store, good[:5])
    await _add(store, [poison])
    await _add(store, good[5:])
    relay = Relay(store, Refusing(broker), source=SOURCE, config=FAST)
    try:
        async with asyncio.timeout(10):
            assert await relay.run_once() == len(good)  # one cycle: the poison row does not hold it back
        received = await receive(audit, len(good), quiet=0.2)
    finally:
        await audit.close()
    for key in ("a", "b"):  # each key in commit order (keys have no order among them)
        assert [e for e in _first_seen(received) if e.partitionkey == key] == [e for e in good if e.partitionkey == key]
    assert len(_first_seen(received)) == len(good)
    assert await _count(store, "tidings_outbox") == 0
    await _assert_parked(store, [poison.id], "refused by the broker: MessageSizeTooLarge")


async def test_the_memory_and_sqlite_brokers_refuse_an_envelope_over_their_limit_for_good(broker: Transport) -> None:
    audit = await broker.subscribe("audit", [JobDone.event_type])
    before, poison, after = _done([1])[0], _oversized(2), _done([3])[0]
    try:
        with pytest.raises(EnvelopeRefused) as refused:
            await broker.publish([before, poison, after])
        assert refused.value.envelope_id == poison.id
        assert str(MAX_MESSAGE_BYTES) in refused.value.reason
        await broker.publish([after])
        received = await receive(audit, 1, quiet=0.3)
    finally:
        await audit.close()
    # before the refused one: accepted or not (the memory broker takes envelopes one by one);
    # after it: not published by the refused call
    assert received in ([after], [before, after])


async def test_a_row_refused_mid_batch_is_parked_and_the_rest_of_the_batch_is_published(
    store: Store, memory: Transport
) -> None:
    audit = await memory.subscribe("audit", [JobDone.event_type])
    envelopes = _done(range(10))
    await _add(store, envelopes)
    refusing = Refusing(memory, {envelopes[3].id, envelopes[7].id})
    relay = Relay(store, refusing, source=SOURCE, config=FAST)
    try:
        assert await relay.run_once() == 8
        received = await receive(audit, 8, quiet=0.2)  # rows before a refusal may come twice
    finally:
        await audit.close()
    assert _numbers(_first_seen(received)) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert refusing.calls == 3
    assert await _count(store, "tidings_outbox") == 0
    await _assert_parked(store, [envelopes[3].id, envelopes[7].id], "MessageSizeTooLarge")
    assert relay.stats["parked"] == 2


async def test_undecodable_outbox_row_is_parked_and_later_rows_flow(store: Store, memory: Transport) -> None:
    audit = await memory.subscribe("audit", [JobDone.event_type])
    before, after = _done(range(3)), _done(range(4, 7))
    await _add(store, before)
    async with store.session() as session, session.begin():  # a row edited by hand, or by a bug
        headers = json.dumps({"ce_id": "broken-1", "ce_source": SOURCE})  # no type, no specversion
        await session.execute(
            insert(outbox_table).values(source=SOURCE, event_id="broken-1", headers=headers, body=b"{}", created_at=0.0)
        )
        await session.execute(
            insert(outbox_table).values(
                source=SOURCE, event_id="broken-2", headers="{not json", body=b"{}", created_at=0.0
            )
        )
    await _add(store, [_oversized(3, spare=-1)])  # over the data limit: consumers would refuse it
    await _add(store, after)
    relay = Relay(store, memory, source=SOURCE, config=FAST)
    try:
        assert await relay.run_once() == 6
        received = await receive(audit, 6, quiet=0.2)
    finally:
        await audit.close()
    assert received == before + after
    assert await _count(store, "tidings_outbox") == 0
    await _assert_parked(store, ["broken-1", "broken-2", ANY], "cannot be decoded")
    async with store.session() as session, session.begin():
        reasons = [row.reason for row in await _parked_rows(session)]
    assert "missing-attribute" in reasons[0]
    assert "JSONDecodeError" in reasons[1]
    assert f"too-large: body is {MAX_MESSAGE_BYTES + 1} bytes" in reasons[2]


class Flaky(Transport):
    """Fails every publish with a transient error, or hangs past the relay's publish timeout."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self.hang:
            await asyncio.sleep(30)  # sleep-ok: a publish that hangs is the scenario
        raise PublishError("connection reset by peer (simulated)")

    open = subscribe = dead_letters = replay = purge = backlog = close = None  # type: ignore[assignment]


@pytest.mark.parametrize("hang", [False, True], ids=["publish-error", "timeout"])
async def test_a_transient_failure_keeps_the_batch_and_parks_nothing(store: Store, hang: bool) -> None:
    """A publish that fails, or that outlasts `publish_timeout` (its cycle then ends after that
    time, not after the hung publish), keeps the batch for the next attempt."""
    await _add(store, _done(range(4)))
    config = RelayConfig(batch_size=50, publish_timeout=0.2, lease=5.0)
    relay = Relay(store, Flaky(hang), source=SOURCE, config=config)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(TimeoutError if hang else PublishError):
            await relay.run_once()
        if hang:
            assert config.publish_timeout <= time.monotonic() - started < config.publish_timeout + 2
    assert await _count(store, "tidings_outbox") == 4
    assert await _count(store, "tidings_outbox_parked") == 0


async def test_a_transient_failure_after_a_refusal_keeps_the_parking(store: Store, memory: Transport) -> None:
    envelopes = _done(range(4))
    await _add(store, envelopes)

    class RefuseThenFail(Refusing):
        async def publish(self, envelopes: Sequence[Envelope]) -> None:
            if self.calls:
                raise PublishError("broker gone (simulated)")
            await super().publish(envelopes)

    relay = Relay(store, RefuseThenFail(memory, {envelopes[1].id}), source=SOURCE, config=FAST)
    with pytest.raises(PublishError):
        await relay.run_once()
    assert await _count(store, "tidings_outbox") == 3  # kept for the retry
    await _assert_parked(store, [envelopes[1].id], "refused by the broker")


async def test_parked_rows_are_listed_replayed_at_the_end_and_purged(store: Store, memory: Transport) -> None:
    from tidings.store import parked

    envelopes = _done(range(6))
    await _add(store, envelopes)
    relay = Relay(store, Refusing(memory, {envelopes[1].id, envelopes[2].id}), source=SOURCE, config=FAST)
    assert await relay.run_once() == 4
    await _add(store, _done([10]))
    async with store.session() as session, session.begin():
        rows = await parked.list(session)
    assert [row.event_id for row in rows] == [envelopes[1].id, envelopes[2].id]
    assert all(row.source == SOURCE and row.parked_at > row.created_at for row in rows)
    assert status_parked(await outbox_status(store.engine.url)) == (2, 2)

    async with store.session() as session, session.begin():
        assert await parked.replay(session, [rows[0].id]) == 1
    async with store.session() as session, session.begin():
        pending = await outbox.pending(session, SOURCE, limit=10)
        assert [row.envelope for row in pending][-1] == envelopes[1]  # at the end, exactly as it was
        assert [row.event_id for row in await parked.list(session)] == [envelopes[2].id]
        assert await parked.purge(session, [rows[1].id]) == 1
        assert await parked.list(session) == []
    assert status_parked(await outbox_status(store.engine.url)) == (0, 0)


def status_parked(status: object) -> tuple[int, int]:
    """The total and the worker's parked counts of an `OutboxStatus`."""
    [source] = [s for s in status.sources if s.source == SOURCE]  # type: ignore[attr-defined]
    return status.parked, source.parked  # type: ignore[attr-defined]


async def _parked_rows(session: AsyncSession) -> list[Any]:
    from tidings.store import parked  # imported here: the module is what these tests ask for

    return await parked.list(session)


async def _assert_parked(store: Store, event_ids: list[object], reason: str) -> None:
    async with store.session() as session, session.begin():
        rows = await _parked_rows(session)
    assert [row.event_id for row in rows] == event_ids
    assert all(reason in row.reason for row in rows), [row.reason for row in rows]


async def test_the_cli_lists_replays_and_purges_parked_rows(
    store: Store, memory: Transport, capsys: pytest.CaptureFixture[str]
) -> None:
    from tidings.cli import main

    envelopes = _done(range(3))
    await _add(store, envelopes)
    relay = Relay(store, Refusing(memory, {envelopes[0].id, envelopes[2].id}), source=SOURCE, config=FAST)
    assert await relay.run_once() == 1
    url = store.engine.url.render_as_string(hide_password=False)

    async def tidings(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, list(argv))
        return code, capsys.readouterr().out

    code, out = await tidings("outbox", "parked", "--database", url)
    assert code == 0
    assert "2 parked outbox row(s)" in out  # the table's title
    code, out = await tidings("outbox", "parked", "--database", url, "--json")
    assert code == 0
    first, second = json.loads(out)
    assert [first["source"], first["event_id"], first["type"]] == [SOURCE, envelopes[0].id, JobDone.event_type]
    assert first["reason"].startswith("refused by the broker: MessageSizeTooLarge")
    code, out = await tidings("outbox", "status", "--database", url, "--json")
    assert code == 0
    assert [(row["source"], row["parked"]) for row in json.loads(out)] == [(SOURCE, 2)]
    code, out = await tidings("outbox", "replay", "--database", url, str(second["id"]))
    assert (code, out) == (0, "replayed 1 parked row(s) into the outbox\n")
    assert await tidings("outbox", "purge", "--database", url) == (2, "")  # ids required
    code, out = await tidings("outbox", "purge", "--database", url, str(first["id"]))
    assert (code, out) == (0, "purged 1 parked row(s)\n")
    async with store.session() as session, session.begin():
        assert [row.envelope for row in await outbox.pending(session, SOURCE, limit=10)] == [envelopes[2]]
    assert await _count(store, "tidings_outbox_parked") == 0
