"""The relay's documented knobs, each asserted: a publish slower than `publish_timeout` fails the
cycle and keeps its rows; `stop(grace)` cancels a batch that outlasts the grace and keeps its rows;
a full batch is followed by the next one at once, not after `poll_interval`; `on_published` gets
the confirmed rows and the time of the confirmation. A SQLite file and the memory broker."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence

import pytest

from tests.integration.store.shop import JobDone
from tests.waiting import eventually
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.retry import RetryPolicy
from tidings.store import Store, outbox
from tidings.store.outbox import OutboxRow
from tidings.store.relay import Relay, RelayConfig
from tidings.transport.base import Transport

SOURCE = "worker"


class Hanging(Transport):
    """Wraps a real transport; `publish` hangs while `hanging` is set, until `answer` is set (or
    it is cancelled): a broker that does not answer."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.hanging = True
        self.answer = asyncio.Event()
        self.calls = 0

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        if self.hanging:
            await self.answer.wait()
        await self.inner.publish(envelopes)

    open = subscribe = dead_letters = replay = purge = backlog = close = None  # type: ignore[assignment]


async def _add(store: Store, count: int) -> list[Envelope]:
    envelopes = [Envelope.wrap(JobDone(n=n, key=f"k{n}"), source=SOURCE) for n in range(count)]
    async with store.session() as session, session.begin():
        await outbox.add(session, envelopes)
    return envelopes


async def _pending(store: Store) -> int:
    async with store.session() as session, session.begin():
        return await outbox.pending_count(session, SOURCE)


async def test_a_publish_slower_than_the_timeout_fails_the_cycle_and_keeps_the_rows(
    store: Store, broker: Transport
) -> None:
    hanging = Hanging(broker)
    config = RelayConfig(publish_timeout=0.2, lease=5.0, backoff=RetryPolicy(base=0.05, max_delay=0.05))
    relay = Relay(store, hanging, source=SOURCE, config=config)
    await _add(store, 3)
    await relay.open()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await relay.run_once()
    assert 0.2 <= time.monotonic() - started < 3.0
    assert await _pending(store) == 3
    hanging.hanging = False
    assert await relay.run_once() == 3
    assert await _pending(store) == 0
    await relay.close()


async def test_stop_cancels_a_batch_that_outlasts_the_grace_and_its_rows_stay(store: Store, broker: Transport) -> None:
    hanging = Hanging(broker)
    relay = Relay(store, hanging, source=SOURCE, config=RelayConfig(publish_timeout=20.0, lease=30.0))
    await _add(store, 2)
    await relay.start()
    relay.wake()
    await eventually(lambda: hanging.calls == 1, "the publish to start")
    started = time.monotonic()
    await relay.stop(grace=0.3)
    assert 0.3 <= time.monotonic() - started < 5.0  # not the 20 s publish timeout
    assert await _pending(store) == 2


async def test_stop_waits_for_a_batch_within_the_grace(store: Store, broker: Transport) -> None:
    audit = await broker.subscribe("audit", [JobDone.event_type])
    hanging = Hanging(broker)
    relay = Relay(store, hanging, source=SOURCE, config=RelayConfig(publish_timeout=20.0, lease=30.0))
    await _add(store, 2)
    await relay.start()
    relay.wake()
    await eventually(lambda: hanging.calls == 1, "the publish to start")
    stopping = asyncio.create_task(relay.stop(grace=10.0))
    hanging.answer.set()  # the broker answers: the batch finishes within the grace
    await stopping
    assert await _pending(store) == 0
    await audit.close()


async def test_a_full_batch_is_followed_by_the_next_at_once(store: Store, broker: Transport) -> None:
    """With a poll interval of a minute, only the rule "a full batch: the next one at once" can
    publish three batches within seconds of one wake-up."""
    relay = Relay(store, broker, source=SOURCE, config=RelayConfig(batch_size=2, poll_interval=60.0))
    await _add(store, 6)
    await relay.start()
    try:
        relay.wake()
        await eventually(lambda: relay.stats["published"] == 6, "three batches after one wake-up", within=5.0)
        assert relay.stats["batches"] == 3
    finally:
        await relay.stop(grace=5.0)


async def test_on_published_gets_the_confirmed_rows_and_the_confirmation_time(store: Store, broker: Transport) -> None:
    published: list[tuple[list[OutboxRow], float]] = []
    relay = Relay(store, broker, source=SOURCE, config=RelayConfig(batch_size=10))
    relay.on_published = lambda rows, confirmed_at: published.append((list(rows), confirmed_at))
    envelopes = await _add(store, 3)
    await relay.open()
    before = time.time()
    assert await relay.run_once() == 3
    after = time.time()
    assert await relay.run_once() == 0  # nothing more: the hook is not called for an empty cycle
    await relay.close()
    assert len(published) == 1
    rows, confirmed_at = published[0]
    assert [row.envelope for row in rows] == envelopes
    assert before <= confirmed_at <= after
    assert all(row.created_at <= confirmed_at for row in rows)
    assert relay.stats["published"] == 3
    assert relay.stats["batches"] == 1


async def test_a_relay_is_started_once(store: Store, broker: Transport) -> None:
    relay = Relay(store, broker, source=SOURCE)
    await relay.start()
    try:
        with pytest.raises(ConfigurationError, match="already started"):
            await relay.start()
    finally:
        await relay.stop(grace=5.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"poll_interval": 0}, "poll_interval, publish_timeout and lease must be positive"),
        ({"publish_timeout": 0}, "poll_interval, publish_timeout and lease must be positive"),
        ({"lease": 0}, "poll_interval, publish_timeout and lease must be positive"),
        ({"publish_timeout": 30.0, "lease": 30.0}, "publish_timeout must be shorter than lease"),
    ],
)
def test_an_invalid_setting_is_refused_with_the_one_line_that_names_it(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        RelayConfig(**changes)  # type: ignore[arg-type]


def test_the_smallest_valid_settings_are_accepted() -> None:
    config = RelayConfig(batch_size=1, poll_interval=0.001, publish_timeout=0.001, lease=0.002)
    assert config.batch_size == 1


ASKED: list[int] = []


class _Counting(RetryPolicy):
    """A backoff that records which failure number each wait was asked for, and does not wait."""

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        ASKED.append(attempt)
        return 0.0


async def test_the_backoff_counts_failures_in_a_row_from_one_and_starts_again_after_a_success(
    store: Store, broker: Transport
) -> None:
    """The n-th failed cycle in a row waits `backoff.delay(n)`; a cycle that works resets n. Timing
    tests cannot tell delay(1) from delay(2) within their tolerance; the attempt numbers can."""
    ASKED.clear()
    relay = Relay(store, broker, source=SOURCE, config=RelayConfig(poll_interval=0.01, backoff=_Counting()))
    outcomes = iter([False, False, False, True, False, False])
    stopped = asyncio.Event()

    async def cycle() -> int:
        failing = next(outcomes, None)
        if failing is None:
            relay.request_stop()
            stopped.set()
            return 0
        if not failing:
            raise ConnectionError("database away (simulated)")
        return 0

    relay._cycle = cycle  # type: ignore[method-assign]  # the loop's cycle
    await relay.open()
    async with asyncio.timeout(10):
        await relay.run()
    await relay.close()
    assert stopped.is_set()
    assert ASKED == [1, 2, 3, 1, 2]
    assert relay.stats["failures"] == 5
