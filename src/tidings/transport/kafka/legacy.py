"""Legacy sources on Kafka: topics of plain-JSON records from publishers that know nothing of
CloudEvents, forwarded as events (`tidings.legacy`).

A subscription whose group consumes legacy sources gets a `LegacyReader`: a member of the
consumer group `<prefix><group>.legacy`, apart from the group's own, reading the sources'
topics from the earliest offset it has not committed, so records written before the service
first started are translated like those that arrive while it runs. For each batch it fetches:

- a record that translates becomes the translated CloudEvent, produced to the events topic
  (keyed by its partition key), so every group subscribed to its type gets it;
- a record the translation ignores is logged and produces nothing;
- a record it refuses, or that is not JSON, is produced to the group's dead-letter topic with
  the reason, `tidings-origin` (`<topic>/<partition>/<offset>`) and `tidings-legacy-topic`,
  so that replay returns it to the source topic and the translation runs again;

then, once Kafka acknowledged all that, the batch's offsets are committed. Forward, then commit:
a crash or a lost partition in between forwards the batch again, with the same event ids (the
record's `id_field`, else a UUIDv5 of its topic, partition, offset and timestamp), so the
receiving inboxes absorb the repeat. A record that already is a CloudEvent is forwarded as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from tidings.envelope import Envelope, decode, to_binary
from tidings.errors import MalformedMessage
from tidings.legacy import Ignore, LegacySource, envelope_of, field_value, parse
from tidings.transport.base import Delivery, Subscription
from tidings.transport.kafka.cluster import Cluster, Outgoing
from tidings.transport.kafka.config import CE_PREFIX, HEADER_LEGACY
from tidings.transport.kafka.delivery import dead_letter_record
from tidings.transport.kafka.refusal import RecordRefused

log = logging.getLogger("tidings.transport.kafka")

_NAMESPACE = uuid.UUID("0c8f5a52-7d3e-4b8e-9f4e-5b1a6c2d9e70")
_BATCH = 256
_BACKOFF = (0.1, 5.0)


def legacy_group(group: str) -> str:
    """The Tidings-side name of the consumer group that reads `group`'s legacy topics."""
    return f"{group}.legacy"


def translate_record(source: LegacySource, record: Any) -> Envelope | Ignore:
    """The envelope a record of `source`'s topic becomes, `Ignore`, or `MalformedMessage`."""
    headers = record.headers or ()
    value = record.value or b""
    if any(name.startswith(CE_PREFIX) for name, _ in headers):
        envelope = decode(headers, value, CE_PREFIX)
    else:
        document = parse(source, value)
        stamp = record.timestamp
        seed = f"{record.topic}/{record.partition}/{record.offset}/{stamp}"
        result = envelope_of(
            source,
            document,
            event_id=field_value(document, source.id_field) or str(uuid.uuid5(_NAMESPACE, seed)),
            time=datetime.fromtimestamp(stamp / 1000, UTC) if stamp is not None and stamp >= 0 else None,
            correlationid=None,
        )
        if isinstance(result, Ignore):
            return result
        envelope = result
    if envelope.partitionkey is None and record.key:
        return envelope.with_changes(partitionkey=record.key.decode("utf-8", "replace"))
    return envelope


class LegacyReader:
    """Reads one group's legacy topics and forwards, ignores or dead-letters each record (see
    the module docstring); `start()` it, `close()` it."""

    def __init__(self, cluster: Cluster, group: str, sources: Collection[LegacySource]) -> None:
        config = cluster.config
        self.group = group
        self._cluster = cluster
        self._sources = {source.name: source for source in sources}
        self._consumer = AIOKafkaConsumer(
            **config.client_options(),
            group_id=config.group_id(legacy_group(group)),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the source topics if missing (one partition), join the consumer group, read.
        An existing topic is left as it is (a least-privilege user may only read it)."""
        for name in self._sources:
            if not await self._cluster.topic_exists(name):
                await self._cluster.ensure_topic(name, 1)
        await self._consumer.start()
        self._consumer.subscribe(sorted(self._sources))
        self._task = asyncio.create_task(self._run(), name=f"tidings-kafka-legacy-{self.group}")

    async def close(self) -> None:
        """Stop reading; what is forwarded but not committed is forwarded again by the next reader."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self._consumer.stop()
        except Exception:
            log.debug("group %s: stopping the legacy consumer failed", self.group, exc_info=True)

    async def _run(self) -> None:
        """Fetch, forward, commit, until cancelled. Any failure (broker, commit after a rebalance)
        backs off and reads the uncommitted batch again: the reader must not die silently, since
        nothing else would forward the topic."""
        failures = 0
        while True:
            batch: dict[Any, list[Any]] = {}
            try:
                batch = await self._consumer.getmany(timeout_ms=1000, max_records=_BATCH)
                if batch:
                    await self._forward([record for records in batch.values() for record in records])
                    await self._consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
                failures = 0
            except Exception as error:
                failures += 1
                delay = min(_BACKOFF[1], _BACKOFF[0] * 2**failures)
                log.warning("group %s: legacy batch failed, reading it again in %.1fs: %r", self.group, delay, error)
                for tp, records in batch.items():  # not committed: start over from the batch
                    with contextlib.suppress(Exception):  # a partition lost meanwhile: its new owner reads it
                        self._consumer.seek(tp, records[0].offset)
                await asyncio.sleep(delay)

    async def _forward(self, records: list[Any]) -> None:
        """Produce what `records` become, in order; a record Kafka refuses for good (too large)
        is dead-lettered instead, so it cannot block its topic."""
        outgoing: list[tuple[Any, Outgoing]] = []
        for record in records:
            made = self._outgoing(record)
            if made is not None:
                outgoing.append((record, made))
        while outgoing:
            try:
                await self._cluster.send([made for _, made in outgoing])
                return
            except RecordRefused as refused:
                record = outgoing[refused.index][0]
                reason = f"Kafka refused the translated event: {refused.reason}"
                outgoing[refused.index] = (record, self._dead_letter(record, reason))

    def _outgoing(self, record: Any) -> Outgoing | None:
        source = self._sources[record.topic]
        try:
            envelope = translate_record(source, record)
        except MalformedMessage as error:
            return self._dead_letter(record, str(error))
        if isinstance(envelope, Ignore):
            log.info("%s: ignoring legacy record %s: %s", self.group, _where(record), envelope.reason)
            return None
        headers, body = to_binary(envelope, CE_PREFIX)
        key = envelope.partitionkey.encode() if envelope.partitionkey is not None else None
        encoded = [(name, value.encode()) for name, value in headers.items()]
        return Outgoing(self._cluster.config.events_topic, key, body, encoded)

    def _dead_letter(self, record: Any, reason: str) -> Outgoing:
        log.warning("%s: dead-lettering legacy record %s: %s", self.group, _where(record), reason)
        value, headers = dead_letter_record(record, reason, 1)
        topic = self._cluster.config.dlq_topic(self.group)
        return Outgoing(topic, record.key, value, [*headers, (HEADER_LEGACY, record.topic.encode())])


def _where(record: Any) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


class WithLegacy(Subscription):
    """A group's subscription together with the reader of its legacy topics; closing closes both."""

    deferred_acks = True  # as the inner `KafkaSubscription`'s, to which `take` and `flush` go

    def __init__(self, inner: Subscription, reader: LegacyReader, on_close: Callable[[LegacyReader], None]) -> None:
        self._inner = inner
        self._reader = reader
        self._on_close = on_close

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return aiter(self._inner)

    async def take(self, limit: int) -> list[Delivery]:
        return await self._inner.take(limit)

    async def flush(self) -> None:
        await self._inner.flush()

    async def close(self) -> None:
        await self._reader.close()
        self._on_close(self._reader)
        await self._inner.close()
