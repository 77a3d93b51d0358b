"""One consumer of a Kafka consumer group: fetching, per-key hand-out, commits, rebalances.

A `KafkaSubscription` is one member of the group `<prefix><group>` on the events topic. Three
tasks cooperate on one event loop:

- the *fetcher* reads records while fewer than `prefetch` are unsettled, skips those the group
  does not handle, and admits the rest to the partition's `Ledger`;
- a record that becomes due (its key free, its retry delay over) is queued with its delivery
  count raised, and that count is committed while earlier deliveries are being handled; the
  *iterator* hands it out once the commit is done, so a consumer that dies holding a delivery
  makes it come back with `attempt + 1`;
- the *committer* commits every changed ledger in one request whenever a settlement waits for
  it (settlements are group-committed: `await delivery.ack()` returns after the commit).

On a rebalance the subscription stops handing out records of the partitions it loses, waits up
to `revoke_grace` for those in flight, commits, and forgets them. Settling a delivery whose
partition was lost raises `TransportError`, unless the partition came back to this subscription
before the record was handed out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from tidings.errors import TransportError
from tidings.transport._kafka_cluster import Cluster, Outgoing, relevant
from tidings.transport._kafka_commits import Committer
from tidings.transport._kafka_delivery import Deliveries, dead_letter_headers
from tidings.transport._kafka_ledger import IN_FLIGHT, READY, WAITING, Ledger, Slot
from tidings.transport.base import Delivery, Subscription

log = logging.getLogger("tidings.transport.kafka")

_FETCH_WAIT_MS = 100
_KEEPALIVE = 10.0
"""A consumer with no room still polls this often, so Kafka does not think it hung."""


class KafkaSubscription(Subscription):
    """A member of one consumer group; iterate it for deliveries, then `close()` it."""

    def __init__(
        self,
        cluster: Cluster,
        group: str,
        types: Collection[str],
        prefetch: int,
        on_close: Callable[[KafkaSubscription], None] | None = None,
    ) -> None:
        config = cluster.config
        self._on_close = on_close
        self.group = group
        self._cluster = cluster
        self._types = set(types)
        self._prefetch = prefetch
        self._read_ahead = max(prefetch, config.read_ahead)
        self._low_water = max(1, self._read_ahead // 4)
        self._grace = config.revoke_grace
        self._consumer = AIOKafkaConsumer(
            **config.client_options(),
            group_id=config.group_id(group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
        )
        self._ledgers: dict[Any, Ledger] = {}
        self._loading: set[Any] = set()
        self._ready: deque[Slot] = deque()
        self._queued = 0
        """Records admitted and not settled that are not in flight (read ahead, or waiting)."""
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._settling = asyncio.Event()
        self._committer = Committer(self._consumer, self._ledgers, group)
        self._assigned = asyncio.Event()
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        self._closed = False

    async def start(self) -> None:
        """Join the group; returns after the first assignment (or a generous timeout)."""
        config = self._cluster.config
        await self._consumer.start()
        self._consumer.subscribe([config.events_topic], listener=_Listener(self))
        self._tasks = [
            asyncio.create_task(self._fetch(), name=f"tidings-kafka-fetch-{self.group}"),
            asyncio.create_task(self._committer.run(), name=f"tidings-kafka-commit-{self.group}"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * config.session_timeout_ms / 1000 + 5):
                await self._assigned.wait()
                return
        log.warning("group %s: no partition assignment yet; consuming once the group settles", self.group)

    # -- handing out ------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return Deliveries(self)

    def take(self) -> Slot | None:
        """The next record to hand out if one can go out right now (without waiting), else None.

        The iterator's fast path; `next_slot` waits (and raises a failure) when this gives None.
        """
        if self._failure is not None or self._closed:
            return None
        ready = self._ready
        while ready:
            slot = ready[0]
            if slot.state is READY and slot.ledger.handing_out:
                break
            ready.popleft()
        else:
            return None
        # Not while the caller holds `prefetch` unsettled deliveries, nor before its count is committed.
        if self._in_flight >= self._prefetch or not slot.recorded.done():
            return None
        ready.popleft()
        slot.state = IN_FLIGHT
        self._queued -= 1
        self._in_flight += 1
        return slot

    async def next_slot(self) -> Slot | None:
        """The next record to hand out, waiting for one; None once the subscription is closed."""
        while True:
            if self._failure is not None:
                raise TransportError(f"the Kafka consumer of group {self.group!r} failed") from self._failure
            if self._closed:
                return None
            slot = self.take()
            if slot is not None:
                return slot
            if not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._in_flight >= self._prefetch:  # the caller holds `prefetch` unsettled deliveries
                self._settling.clear()
                await self._settling.wait()
                continue
            try:  # the head's delivery count is being committed
                await asyncio.shield(self._ready[0].recorded)
            except TransportError as error:  # only the attempt count is at stake; hand out anyway
                log.warning("group %s: could not record a delivery before handing it out: %s", self.group, error)
            # the queue may have changed meanwhile: look again

    def _consider(self, slot: Slot) -> None:
        """Queue `slot` if it is due; otherwise arm a timer for its retry delay, if it has one."""
        ledger = slot.ledger
        if slot.state is not WAITING or not ledger.handing_out or slot.ahead is not None:
            return  # not waiting, its partition is being revoked, or an earlier record of its key is unsettled
        if slot.not_before:
            delay = slot.not_before - time.time()
            if delay > 0:  # its key is free: wait for the retry delay
                self._arm(slot, delay)
                return
        # Count the coming hand-out and have it committed (with whatever else is pending)
        # while earlier deliveries are being handled; `next_slot` waits for that commit.
        slot.state = READY
        slot.deliveries += 1
        slot.recorded = self._committer.ticket()
        self._ready.append(slot)
        self._wakeup.set()

    def _arm(self, slot: Slot, delay: float) -> None:
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            self._consider(slot)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    # -- settling ---------------------------------------------------------------------------------

    async def settle(self, slot: Slot) -> None:
        """The delivery of `slot` is done: forget it and return once that is committed."""
        await self.settled(slot)

    def settled(self, slot: Slot) -> asyncio.Future[None]:
        """`settle` without its coroutine (an ack's hot path): forget `slot` now and return the
        future of the commit covering that; raises `TransportError` if its partition was lost."""
        if slot.ledger.active:
            self._release(slot)
        else:
            self._settle_lost(slot)
        return self._committer.waiter()

    async def retry(self, slot: Slot, after: float) -> None:
        """Hand `slot` out again after `after` seconds; its key stays blocked until then."""
        if not slot.ledger.active:
            return  # the partition's new owner delivers it again
        self._land(slot)
        slot.not_before = time.time() + after
        self._consider(slot)
        await self._committer.flush()

    async def dead_letter(self, slot: Slot, reason: str) -> None:
        """Produce `slot`'s record to the group's dead-letter topic, then settle it."""
        record = slot.record
        headers = dead_letter_headers(record, reason, slot.deliveries)
        topic = self._cluster.config.dlq_topic(self.group)
        try:
            await self._cluster.send([Outgoing(topic, record.key, record.value or b"", headers)])
        except TransportError:
            if slot.ledger.active:  # not dead-lettered: deliver it again
                self._land(slot)
                self._consider(slot)
            raise
        await self.settle(slot)

    def _land(self, slot: Slot) -> None:
        """An in-flight delivery goes back to waiting (a retry, a failed dead-lettering)."""
        slot.state = WAITING
        self._in_flight -= 1
        self._queued += 1
        self._settling.set()

    def _release(self, slot: Slot) -> None:
        if slot.state is IN_FLIGHT:
            self._in_flight -= 1
        else:
            self._queued -= 1
        following = slot.ledger.settle(slot)
        self._room.set()
        self._settling.set()
        if following is not None:
            self._consider(following)

    def _settle_lost(self, slot: Slot) -> None:
        """Settle a delivery whose partition was revoked: possible only if it came back to us."""
        record = slot.record
        ledger = self._ledgers.get(_partition(record))
        if ledger is None or not ledger.active:
            raise TransportError(
                f"group {self.group!r} lost partition {record.partition} in a rebalance; "
                "the message will be delivered again"
            )
        again = ledger.slot_at(record.offset)
        if again is None:
            ledger.presettle(record.offset)
        elif again.state is IN_FLIGHT:
            raise TransportError(f"group {self.group!r} handed this message out again after a rebalance")
        else:
            self._release(again)

    # -- fetching ---------------------------------------------------------------------------------

    async def _fetch(self) -> None:
        while not self._closed:
            try:
                room = self._read_ahead - self._queued
                self._sync_pause(room)
                if room < self._low_water and self._queued:  # fetch in batches, not record by record
                    self._room.clear()
                    try:
                        async with asyncio.timeout(_KEEPALIVE):
                            await self._room.wait()
                    except TimeoutError:  # poll anyway, or Kafka presumes this consumer hung
                        self._admit(await self._consumer.getmany(timeout_ms=0, max_records=max(1, room)))
                    continue
                batch = await self._consumer.getmany(timeout_ms=_FETCH_WAIT_MS, max_records=room)
                self._admit(batch)
            except asyncio.CancelledError:
                raise
            except KafkaError as error:
                if not error.retriable:
                    self._fail(error)
                    return
                log.warning("group %s: fetching failed, retrying: %r", self.group, error)
                await asyncio.sleep(0.5)
            except Exception as error:
                self._fail(error)
                return

    def _fail(self, error: BaseException) -> None:
        log.error("group %s: the Kafka consumer stopped: %r", self.group, error)
        self._failure = error
        self._wakeup.set()

    def _admit(self, batch: dict[Any, list[Any]]) -> None:
        for tp, records in batch.items():
            ledger = self._ledgers.get(tp)
            if ledger is None or not ledger.active:  # assigned but not loaded yet: read it again later
                with contextlib.suppress(Exception):
                    self._consumer.seek(tp, records[0].offset)
                continue
            # `_consider` inlined for the common case (due at once); all queued slots of this
            # batch share the ticket of the next commit, which cannot start during this loop.
            admit, group, types = ledger.admit, self.group, self._types
            ready, ticket = self._ready, None
            for record in records:
                slot = admit(record.offset, record.key, record, relevant=relevant(record, group, types))
                if slot is None:
                    continue
                self._queued += 1
                if slot.not_before:  # a retry delay carried over from the previous owner
                    self._consider(slot)
                elif ledger.handing_out and slot.ahead is None:  # it heads its key
                    slot.state = READY
                    slot.deliveries += 1
                    if ticket is None:
                        ticket = self._committer.ticket()
                    slot.recorded = ticket
                    ready.append(slot)
            if ticket is not None:
                self._wakeup.set()

    def _sync_pause(self, room: int) -> None:
        """Pause partitions being loaded, and every partition while there is no room."""
        assigned = self._consumer.assignment()
        wanted = set(assigned) if room <= 0 else self._loading & assigned
        paused = self._consumer.paused()
        if wanted - paused:
            self._consumer.pause(*(wanted - paused))
        if paused - wanted:
            self._consumer.resume(*(paused - wanted))

    # -- rebalancing ------------------------------------------------------------------------------

    async def _on_revoked(self, revoked: Collection[Any]) -> None:
        ledgers = [self._ledgers[tp] for tp in revoked if tp in self._ledgers]
        _stop_handing_out(ledgers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while not self._closed and _in_flight(ledgers) and loop.time() < deadline:
            self._settling.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._settling.wait()
        with contextlib.suppress(Exception):  # a failed commit means redeliveries, logged in _commit
            await self._committer.commit()
        for tp in revoked:
            if tp in self._ledgers:
                self._forget(self._ledgers.pop(tp))
        self._room.set()

    async def _on_assigned(self, assigned: Collection[Any]) -> None:
        partitions = set(assigned)
        self._loading |= partitions
        self._sync_pause(self._read_ahead - self._queued)  # before any await: no record slips past
        committed: dict[Any, tuple[int, str]] = {}
        try:
            committed = await self._cluster.committed(self._cluster.config.group_id(self.group), partitions)
            self._types |= (await self._cluster.groups()).get(self.group, set())
        except Exception as error:  # start from the committed offsets, without what their metadata said
            log.warning("group %s: could not read commit metadata: %r", self.group, error)
        for tp in partitions:
            if tp in self._ledgers:
                self._forget(self._ledgers.pop(tp))
            offset, metadata = committed.get(tp, (None, ""))
            self._ledgers[tp] = Ledger(offset, metadata)
        self._loading -= partitions
        self._sync_pause(self._read_ahead - self._queued)
        self._assigned.set()

    def _forget(self, ledger: Ledger) -> None:
        """Drop a revoked partition's ledger; its deliveries in flight can no longer commit."""
        ledger.active = ledger.handing_out = False
        for slot in ledger.slots():
            if slot.state is IN_FLIGHT:
                self._in_flight -= 1
            else:
                self._queued -= 1
        self._room.set()
        self._settling.set()

    # -- closing ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the group. Unsettled deliveries go to the group's other consumers with attempt + 1."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        self._room.set()
        self._settling.set()
        for timer in self._timers:
            timer.cancel()
        fetcher, committer = self._tasks or (None, None)
        await _cancel(fetcher)
        _stop_handing_out(list(self._ledgers.values()))
        with contextlib.suppress(Exception):
            await self._committer.commit()
        await _cancel(committer)
        for ledger in self._ledgers.values():
            ledger.active = ledger.handing_out = False
        try:
            await self._consumer.stop()
        except Exception:
            log.debug("group %s: stopping the consumer failed", self.group, exc_info=True)
        self._committer.close(f"the subscription of group {self.group!r} is closed")
        if self._on_close is not None:
            self._on_close(self)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance callbacks (run in its coordination task) to the subscription."""

    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        await self._subscription._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[Any]) -> None:
        await self._subscription._on_assigned(assigned)


def _stop_handing_out(ledgers: list[Ledger]) -> None:
    """No more hand-outs from these partitions; take back delivery counts raised for none."""
    for ledger in ledgers:
        ledger.handing_out = False
        for slot in ledger.slots():
            if slot.state is READY:
                slot.deliveries -= 1
                slot.state = WAITING


def _in_flight(ledgers: list[Ledger]) -> bool:
    return any(slot.state is IN_FLIGHT for ledger in ledgers for slot in ledger.slots())


def _partition(record: Any) -> Any:
    return TopicPartition(record.topic, record.partition)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
