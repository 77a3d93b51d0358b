"""The Kafka clients one transport shares, and the broker-side chores built on them.

One `Cluster` per `KafkaTransport`: an idempotent producer (`acks=all`), an admin client, and a
*reader* (a consumer without a group, behind a lock) for offsets and for reading ranges of
records (the group registry, dead letters, backlog scans). Subscriptions have consumers of
their own, since each is a member of its group.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError

from tidings.envelope import STRUCTURED
from tidings.errors import TransportError
from tidings.transport.kafka.config import CE_PREFIX, HEADER_GROUP, KafkaConfig
from tidings.transport.kafka.produce import produce
from tidings.transport.kafka.retrying import raise_retriable, retrying
from tidings.transport.kafka.tls import handshake_failure

log = logging.getLogger("tidings.transport.kafka")

_TYPE_HEADER = CE_PREFIX + "type"
_TOPIC_EXISTS = 36


class Outgoing(NamedTuple):
    """One record to produce; keyless records of one `send` share a partition (see `send`)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class Cluster:
    """Shared clients and chores of one transport; `start()` it, `stop()` it."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        options = config.client_options()
        self.producer = AIOKafkaProducer(
            **options,
            enable_idempotence=True,
            acks="all",
            linger_ms=config.linger_ms,
            max_batch_size=config.max_batch_size,
        )
        self.admin = AIOKafkaAdminClient(**options)
        self.reader = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        self._reader_lock = asyncio.Lock()
        self._replicas = 1
        self._topics: set[str] = set()
        self._partitions: dict[str, int] = {}
        self._sticky = itertools.count()
        self._registry: dict[str, set[str]] = {}
        self._registry_next = 0
        self._registry_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect every client and create the events and registry topics if missing."""
        try:
            for client in (self.admin, self.producer, self.reader):
                await client.start()
            await retrying(self._create_topics, "creating the Kafka topics", self.config.declare_timeout)
        except BaseException as error:
            await self.stop()  # every client, started or not: aiokafka warns about unclosed ones
            if isinstance(error, KafkaError | OSError):
                why = f"{error}{await handshake_failure(self.config)}"
                raise TransportError(f"cannot reach Kafka at {','.join(self.config.bootstrap)}: {why}") from error
            raise

    async def _create_topics(self) -> None:
        if self.config.replication_factor:
            self._replicas = self.config.replication_factor
        else:
            brokers = (await self.admin.describe_cluster())["brokers"]
            self._replicas = min(3, len(brokers))
        await self.ensure_topic(self.config.events_topic, self.config.partitions)
        await self.ensure_topic(self.config.registry_topic, 1, {"cleanup.policy": "compact"})

    async def stop(self) -> None:
        for client in (self.reader, self.producer, self.admin):
            await _stop(client)

    # -- topics -----------------------------------------------------------------------------------

    async def ensure_topic(self, name: str, partitions: int, configs: Mapping[str, str] | None = None) -> None:
        """Create topic `name` unless it exists; then learn its real partition count."""
        if name in self._topics:
            return
        topic = NewTopic(name, partitions, self._replicas, topic_configs=dict(configs or {}))
        response = await self.admin.create_topics([topic])
        for _, code, *detail in response.topic_errors:
            if code not in (0, _TOPIC_EXISTS):
                raise_retriable(code, detail)  # e.g. NOT_CONTROLLER: `retrying` asks again
                raise TransportError(f"cannot create Kafka topic {name!r}: error {code} {detail}")
        for _ in range(100):  # a new topic's metadata reaches the brokers shortly after creation
            (described,) = await self.admin.describe_topics([name])
            if described["error_code"] == 0 and described["partitions"]:
                self._partitions[name] = len(described["partitions"])
                self._topics.add(name)
                return
            await asyncio.sleep(0.05)
        raise TransportError(f"Kafka topic {name!r} has no partitions after creating it")

    async def topic_exists(self, name: str) -> bool:
        if name in self._topics:
            return True
        if name not in await self.admin.list_topics():  # naming one topic could auto-create it
            return False
        (described,) = await self.admin.describe_topics([name])
        self._partitions[name] = len(described["partitions"])
        self._topics.add(name)
        return True

    def partitions(self, topic: str) -> list[Any]:
        """The `TopicPartition`s of a topic this cluster created or checked."""
        return [TopicPartition(topic, n) for n in range(self._partitions[topic])]

    # -- producing --------------------------------------------------------------------------------

    async def send(self, records: Sequence[Outgoing]) -> None:
        """Produce all records, then wait until the brokers acknowledged every one (`acks=all`).

        Keyless records of one call go to one partition, chosen round-robin per call, so a batch
        stays in order and travels in one request (Kafka's sticky partitioning). Raises
        `PublishError` if any record was not acknowledged.
        """
        await produce(
            self.producer, records, next(self._sticky), self.producer._max_request_size, self.config.max_batch_size
        )

    # -- offsets and reading ----------------------------------------------------------------------

    async def committed(self, group_id: str, partitions: Collection[Any]) -> dict[Any, tuple[int, str]]:
        """The group's committed (offset, metadata) per partition; partitions without one are left out."""
        offsets = await self.admin.list_consumer_group_offsets(group_id, partitions=list(partitions))
        return {tp: (om.offset, om.metadata or "") for tp, om in offsets.items() if om.offset >= 0}

    async def bounds(self, partitions: Collection[Any]) -> tuple[dict[Any, int], dict[Any, int]]:
        """First and next offsets of each partition (log start and end)."""
        async with self._reader_lock:
            first = await self.reader.beginning_offsets(list(partitions))
            end = await self.reader.end_offsets(list(partitions))
        return first, end

    async def read(self, ranges: Mapping[Any, tuple[int, int]]) -> dict[Any, list[Any]]:
        """The records in `[start, end)` of each partition (records deleted since are skipped)."""
        wanted = {tp: span for tp, span in ranges.items() if span[1] > span[0]}
        found: dict[Any, list[Any]] = {tp: [] for tp in ranges}
        if not wanted:
            return found
        async with self._reader_lock:
            self.reader.assign(list(wanted))
            for tp, (start, _) in wanted.items():
                self.reader.seek(tp, start)
            try:
                async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                    while wanted:
                        batch = await self.reader.getmany(*wanted, timeout_ms=100)
                        for tp, records in batch.items():
                            found[tp].extend(r for r in records if r.offset < wanted[tp][1])
                        for tp in list(wanted):
                            if await self.reader.position(tp) >= wanted[tp][1]:
                                del wanted[tp]
            except TimeoutError:
                raise TransportError(f"reading {sorted(map(tuple, wanted))} from Kafka timed out") from None
            finally:
                self.reader.assign([])
        return found

    # -- groups -----------------------------------------------------------------------------------

    async def register(self, group: str, types: Iterable[str]) -> None:
        """Record durably that `group` subscribes to `types` (the registry is a union)."""
        known = (await self.groups()).get(group, set())
        new = sorted(set(types) - known)
        if new:
            topic = self.config.registry_topic
            await self.send([Outgoing(topic, f"{group}\n{name}".encode(), b"1", []) for name in new])
            async with self._registry_lock:
                self._registry.setdefault(group, set()).update(new)

    async def groups(self) -> dict[str, set[str]]:
        """Every group declared under this prefix, with the union of the types it subscribed to."""
        async with self._registry_lock:
            (tp,) = self.partitions(self.config.registry_topic)
            first, end = await self.bounds([tp])
            records = await self.read({tp: (max(self._registry_next, first[tp]), end[tp])})
            for record in records[tp]:
                group, _, name = (record.key or b"").decode(errors="replace").partition("\n")
                if group and name:
                    self._registry.setdefault(group, set()).add(name)
            self._registry_next = max(self._registry_next, end[tp])
            return {group: set(names) for group, names in self._registry.items()}

    async def declare(self, group: str) -> None:
        """Make sure `group` has a committed offset on every events partition.

        A group without one starts at the current end, so it receives what is published after
        `subscribe` returns and nothing from before. End offsets are read *before* checking for
        commits, so two processes declaring one new group at once can only move its start
        earlier, never skip an event published after either returned.
        """
        group_id = self.config.group_id(group)
        partitions = self.partitions(self.config.events_topic)
        committed = await self.committed(group_id, partitions)
        if len(committed) == len(partitions):
            return
        _, end = await self.bounds(partitions)
        committed = await self.committed(group_id, partitions)
        missing = [tp for tp in partitions if tp not in committed]
        if not missing:
            return
        consumer = AIOKafkaConsumer(**self.config.client_options(), group_id=group_id, enable_auto_commit=False)
        try:
            await consumer.start()
            consumer.assign(missing)
            await consumer.commit({tp: (end[tp], "") for tp in missing})
        except CommitFailedError:
            # The group has live members, so it was declared before; partitions it has no
            # commit for are read from the beginning (auto_offset_reset=earliest).
            log.info("group %s is active; not committing start offsets for %s", group, missing)
        finally:
            await _stop(consumer)


def record_headers(record: Any) -> dict[str, bytes]:
    return {key: value for key, value in (record.headers or ())}


def record_type(headers: Mapping[str, bytes], body: bytes | None) -> str | None:
    """The CloudEvents type of a record, from its header or (structured mode) its body."""
    value = headers.get(CE_PREFIX + "type")
    if value is not None:
        return value.decode(errors="replace")
    if not headers.get("content-type", b"").startswith(STRUCTURED.encode()):
        return None
    try:
        document = json.loads(body or b"")
    except (ValueError, RecursionError):  # the consumer's decoding says what is wrong with it
        return None
    kind = document.get("type") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) else None


def relevant(record: Any, group: str, types: Collection[str]) -> bool:
    """Whether `group` handles this record: a replay aimed at it, or a type it subscribes to.

    A record whose type cannot be read (none, or empty) is handed out, so the consumer
    dead-letters it with a reason.
    """
    kind: bytes | None = None
    for key, value in record.headers or ():  # no dict: this runs for every record of the topic
        if key == _TYPE_HEADER:
            kind = value
        elif key == HEADER_GROUP:
            return bool(value.decode(errors="replace") == group)
    if kind:
        return kind.decode(errors="replace") in types
    name = record_type(record_headers(record), record.value)
    return not name or name in types


async def _stop(client: Any) -> None:
    try:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
    except Exception:  # closing is best effort; the broker drops the connection anyway
        log.debug("closing %r failed", client, exc_info=True)
