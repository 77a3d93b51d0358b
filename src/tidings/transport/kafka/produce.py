"""Producing a batch of records: one record batch per partition, not one `send` per record.

aiokafka's `send` is a coroutine per record: it waits on metadata, looks up the topic's
partitions, partitions the record and appends it to the accumulator, and returns a future per
record. A publish of a few hundred records paid that for each (profile in ADR 0025). Here a
call groups its records by partition first (keyed ones with the producer's own partitioner, so
a key lands where any Kafka client would put it), builds each partition's record batch in one
loop, and hands the batches to the producer, which assigns them their idempotent sequence
numbers as it does for its own batches. Order within a partition is the call's order.

A record the producer would refuse as too large before sending it (`max_request_size`, or a
batch of its own over `max_batch_size`) sends the whole call the per-record way, so the refusal
names that record's index exactly as before (`RecordRefused`).

A partition has one batch in flight at a time, so concurrent calls for one partition queue in
aiokafka's accumulator. Its wait for a place in that queue takes the time already waited off its
budget again at every turn, so with a few hundred callers the late ones gave up with
`KafkaTimeoutError` within a second or two instead of the request timeout. `_queue` asks again
until the request timeout has really passed: a batch refused there was never queued, so asking
again cannot send it twice.

Besides the public `create_batch`/`send_batch`, this reads five producer internals that aiokafka
has kept since 0.5 (`_partitioner`, `_max_request_size`, `_request_timeout_ms`, `client.cluster`,
`client._wait_on_metadata`); `tests/integration/test_kafka_*` and the conformance suite would
catch a release that changes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tidings.errors import PublishError
from tidings.transport.kafka.refusal import TOO_LARGE, RecordRefused

Record = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]
"""(topic, key, value, headers), the shape of `cluster.Outgoing`."""

_estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes


async def produce(producer: Any, records: Sequence[Record], sticky: int, limit: int, batch_size: int) -> None:
    """Send `records` and return once every one is acknowledged; keyless records of the call go
    to partition `sticky` modulo the topic's partitions. `limit` is the producer's largest
    request, `batch_size` its largest batch. Raises `RecordRefused` or `PublishError`."""
    if any(_estimate(key, value, headers) > min(limit, batch_size) for _, key, value, headers in records):
        await _one_by_one(producer, records, sticky)
        return
    partitioner = producer._partitioner
    metadata = producer.client.cluster
    batches: list[tuple[str, int, Any, int]] = []  # topic, partition, builder, index of its first record
    open_batches: dict[tuple[str, int], tuple[Any, int]] = {}
    layout: dict[str, tuple[list[int], list[int]]] = {}
    for index, (topic, key, value, headers) in enumerate(records):
        partitions = layout.get(topic)
        if partitions is None:
            await producer.client._wait_on_metadata(topic)  # once per topic and call
            partitions = layout[topic] = (
                sorted(metadata.partitions_for_topic(topic)),
                sorted(metadata.available_partitions_for_topic(topic)),
            )
        every, available = partitions
        partition = every[sticky % len(every)] if key is None else partitioner(key, every, available)
        current = open_batches.get((topic, partition))
        if current is None or current[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
            builder = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value, headers=headers)
            open_batches[(topic, partition)] = (builder, index)
            batches.append((topic, partition, builder, index))
    futures: list[asyncio.Future[Any]] = []
    firsts: list[int] = []
    deadline = time.monotonic() + producer._request_timeout_ms / 1000
    try:
        for topic, partition, builder, first in batches:
            futures.append(await _queue(producer, builder, topic, partition, deadline))
            firsts.append(first)
    except Exception as error:
        await asyncio.gather(*futures, return_exceptions=True)
        index = batches[len(futures)][3]
        if isinstance(error, TOO_LARGE):
            raise RecordRefused(index, type(error).__name__) from error
        raise PublishError(f"Kafka refused a record: {error!r}") from error
    results = await asyncio.gather(*futures, return_exceptions=True)
    _check(results, firsts, len(records))


async def _queue(producer: Any, builder: Any, topic: str, partition: int, deadline: float) -> Any:
    """`producer.send_batch`, asked again while it gives up before `deadline` (module docstring)."""
    while True:
        try:
            return await producer.send_batch(builder, topic, partition=partition)
        except KafkaTimeoutError:
            if time.monotonic() >= deadline:
                raise


async def _one_by_one(producer: Any, records: Sequence[Record], sticky: int) -> None:
    """The per-record way: what aiokafka refuses before sending is named by its index."""
    futures: list[asyncio.Future[Any]] = []
    try:
        for topic, key, value, headers in records:
            partition = None
            if key is None:
                await producer.client._wait_on_metadata(topic)
                every = sorted(producer.client.cluster.partitions_for_topic(topic))
                partition = every[sticky % len(every)]
            futures.append(await producer.send(topic, value, key=key, partition=partition, headers=headers))
    except Exception as error:
        await asyncio.gather(*futures, return_exceptions=True)
        if isinstance(error, TOO_LARGE):
            raise RecordRefused(len(futures), type(error).__name__) from error
        raise PublishError(f"Kafka refused a record: {error!r}") from error
    results = await asyncio.gather(*futures, return_exceptions=True)
    _check(results, list(range(len(results))), len(records))


def _check(results: list[Any], firsts: list[int], total: int) -> None:
    """Raise for the first refused batch (`RecordRefused` naming its first record) or any failure."""
    for first, result in zip(firsts, results, strict=True):
        if isinstance(result, TOO_LARGE):
            raise RecordRefused(first, type(result).__name__) from result
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        raise PublishError(f"Kafka did not acknowledge every one of {total} records: {failures[0]!r}")
