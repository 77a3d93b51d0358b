"""Kafka for `bench/transport.py`: a fresh topic prefix per run (its topics deleted afterwards),
and the same work done by raw aiokafka, so all figures come from one run.

"The same work": the same records (the bytes, key and CloudEvents headers Tidings sends for the
run's envelopes) to a topic with the same partition count, by an idempotent producer with
`acks=all` and the producer settings Tidings uses, awaiting every acknowledgement per batch of
`--batch`; then consumed by a member of a fresh consumer group that reads at most `--prefetch`
records at a time and commits after each batch (the usual at-least-once loop). Two baselines:

- `aiokafka`, the floor: records built before the clock starts, nothing decoded;
- `aiokafka+codec`: plus Tidings' CloudEvents codec, encoding each envelope when publishing and
  decoding each record when consuming, which any consumer of these events must do.

Tidings decodes each envelope and acks each delivery (a commit per batch of settlements, plus a
commit recording delivery counts before hand-out): `tidings` with a task per delivery awaiting its
own ack (what `Service` did before ADR 0028), `tidings-batches` through the batch API (`batches()`,
then one `ack_all` per batch, the raw loop's shape), and `tidings-service`, the runtime path users
get: a `Service` without a database and with its default concurrency, whose handler does nothing,
consuming only (what it publishes is not timed). Shared machines are noisy, so the comparison
runs `--rounds` rounds in rotated order and reports the median of each figure (and every sample).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tidings_round import Seconds, Stopwatch, service_round, summarise, tidings_round

from tidings.envelope import Envelope, decode, to_binary
from tidings.service import Service
from tidings.transport.kafka import KafkaConfig

BOOTSTRAP = "127.0.0.1:9092"
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]
"""(key, value, headers) of one record as Tidings sends it."""
KINDS = ("publish", "consume_ack")
SERVICE_CONCURRENCY = Service("bench").concurrency
"""The `Service` default: the runtime path as users get it."""
BASELINES = ("aiokafka", "aiokafka+codec")
"""`aiokafka`: the floor, no encoding or decoding; `aiokafka+codec`: plus the CloudEvents codec."""


@asynccontextmanager
async def kafka_broker(args: argparse.Namespace) -> AsyncIterator[str]:
    """A topic prefix made for this run on 127.0.0.1:9092; its topics are deleted afterwards."""
    prefix = f"tidings-bench-{uuid.uuid4().hex[:8]}."
    try:
        yield f"kafka://{BOOTSTRAP}?prefix={prefix}"
    finally:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        try:
            topics = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
            if topics:
                await admin.delete_topics(topics)
        finally:
            await admin.close()


def _records(envelopes: list[Envelope]) -> list[Record]:
    records = []
    for envelope in envelopes:
        headers, body = to_binary(envelope, "ce_")
        key = envelope.partitionkey.encode() if envelope.partitionkey is not None else None
        records.append((key, body, [(name, value.encode()) for name, value in headers.items()]))
    return records


async def raw_aiokafka(
    url: str, args: argparse.Namespace, envelopes: list[Envelope], run: str, *, codec: bool = False
) -> tuple[Seconds, Seconds]:
    """Raw aiokafka; with `codec`, it also encodes each envelope when publishing and decodes each
    record into an envelope when consuming (Tidings' CloudEvents codec), as any real consumer must."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    config = KafkaConfig.from_url(url)
    topic, group = f"{config.prefix}raw-{run}", f"{config.prefix}raw-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, config.partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        enable_idempotence=True,
        acks="all",
        linger_ms=config.linger_ms,
        max_batch_size=config.max_batch_size,
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, n) for n in range(config.partitions)]
        consumer.subscribe([topic])
        async with asyncio.timeout(60):
            while not consumer.assignment():  # joined, so consuming starts at once after publishing
                await consumer.getmany(timeout_ms=100)
        await consumer.commit({tp: 0 for tp in partitions if tp in consumer.assignment()})

        records = None if codec else _records(envelopes)
        watch = Stopwatch()
        for start in range(0, len(envelopes), args.batch):
            batch = (
                _records(envelopes[start : start + args.batch])
                if records is None
                else records[start : start + args.batch]
            )
            futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in batch]
            await asyncio.gather(*futures)
        publish_seconds = watch.stop()

        watch = Stopwatch()
        received = 0
        while received < len(envelopes):
            fetched = await consumer.getmany(timeout_ms=100, max_records=args.prefetch)
            for part in fetched.values():
                received += len(part)
                if codec:
                    for record in part:
                        decode(record.headers, record.value, "ce_")
            if fetched:
                await consumer.commit()
        consume_seconds = watch.stop()
    finally:
        await consumer.stop()
        await producer.stop()
    return publish_seconds, consume_seconds


async def tidings(
    url: str, args: argparse.Namespace, envelopes: list[Envelope], run: str, *, batched: bool = False
) -> tuple[Seconds, Seconds]:
    """What `measure` in bench/transport.py does, as one round of the comparison; `batched`
    consumes through the batch API (`batches()` + `ack_all`) instead of a task per delivery."""
    return await tidings_round(url, args, envelopes, f"compare-{run}{'-batches' if batched else ''}", batched=batched)


async def kafka_baselines(url: str, args: argparse.Namespace, envelopes: list[Envelope]) -> dict[str, Any]:
    """Tidings and raw aiokafka (without and with the CloudEvents codec) doing the same work, in
    interleaved rounds: median events/s of each, every sample, and Tidings' medians relative to
    the others'."""
    rounds = max(1, getattr(args, "rounds", 3))
    names = ["tidings", "tidings-batches", "tidings-service", *BASELINES]
    kinds = (*KINDS, *(f"{kind}_cpu_us" for kind in KINDS), "consume_ack_gc_us")
    samples: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in kinds} for name in names}
    consuming = ("consume_ack", "consume_ack_cpu_us", "consume_ack_gc_us")
    samples["tidings-service"] = {kind: [] for kind in consuming}  # consumes only
    for number in range(rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            if name == "tidings-service":
                consumed = await service_round(url, args, envelopes, f"bench-service-{number}")
                samples[name]["consume_ack"].append(round(len(envelopes) / consumed))
                samples[name]["consume_ack_cpu_us"].append(round(consumed.cpu * 1e6 / len(envelopes), 1))
                samples[name]["consume_ack_gc_us"].append(round(consumed.collector * 1e6 / len(envelopes), 2))
                continue
            if name.startswith("tidings"):
                seconds = await tidings(url, args, envelopes, str(number), batched=name == "tidings-batches")
            else:
                seconds = await raw_aiokafka(
                    url, args, envelopes, f"{name.replace('+', '-')}-{number}", codec=name != "aiokafka"
                )
            for kind, elapsed in zip(KINDS, seconds, strict=True):
                samples[name][kind].append(round(len(envelopes) / elapsed))
                samples[name][f"{kind}_cpu_us"].append(round(elapsed.cpu * 1e6 / len(envelopes), 1))
            samples[name]["consume_ack_gc_us"].append(round(seconds[1].collector * 1e6 / len(envelopes), 2))
    figures = summarise(samples, BASELINES)
    figures["tidings_batches_relative"] = summarise(
        {"tidings": samples["tidings-batches"], **{name: samples[name] for name in BASELINES}}, BASELINES
    )["tidings_relative"]
    figures["tidings_service_relative"] = summarise(
        {"tidings": samples["tidings-service"], **{name: samples[name] for name in BASELINES}}, BASELINES
    )["tidings_relative"]
    figures["service_concurrency"] = SERVICE_CONCURRENCY
    figures["rounds"] = rounds
    figures["partitions"] = KafkaConfig.from_url(url).partitions
    figures["prefix"] = parse_qs(urlsplit(url).query).get("prefix", [""])[0]
    return figures
