"""The peer of the reliable path: FastStream 0.7 with faststream-outbox doing the same job.

    python bench/faststream_peer.py --events 2000 --database postgresql://postgres:postgres@127.0.0.1:5432/postgres

The job is `bench/reliable_path.py`'s: consume an order from RabbitMQ, write a business row and a
follow-up event to the outbox in one PostgreSQL transaction, and relay the follow-up to the same
broker. Here the consumer is a FastStream RabbitMQ subscriber (acked after its handler returned,
FastStream's default), the outbox is faststream-outbox's table (`make_outbox_table`), written
with `OutboxBroker.publish(..., session=session)` in the handler's transaction, and its relay is
an outbox subscriber stacked under a RabbitMQ publisher, as that project's documentation shows.
There is no inbox: a redelivered order writes its row twice (Tidings deduplicates through its
inbox, which is part of its figure).

The inputs are published first (not timed); the clock runs from starting the brokers until the
follow-up queue holds every follow-up (RabbitMQ's own count, read through a passive declare, so
no consumer of the follow-ups costs CPU here). `measure()` is what `reliable_path.py` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import aio_pika
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


async def measure(
    database: str, broker: str, events: int, *, relay_workers: int = 4, fetch_batch: int = 100
) -> dict[str, Any]:
    """Run the job on `events` orders; `database` is a PostgreSQL URL of a database of its own."""
    from faststream.rabbit import RabbitBroker
    from faststream_outbox import OutboxBroker, make_outbox_table

    tag = uuid.uuid4().hex[:10]
    inputs, follow_ups = f"fs-bench-orders-{tag}", f"fs-bench-accepted-{tag}"
    metadata = MetaData()
    orders = Table(
        "fs_bench_orders",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("order_id", String(64), nullable=False),
        Column("amount", Integer, nullable=False),
    )
    outbox_table = make_outbox_table(metadata, table_name="fs_outbox")
    engine = create_async_engine(database.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=20)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)

    rabbit = RabbitBroker(broker, logger=None)
    outbox = OutboxBroker(engine, outbox_table=outbox_table, logger=None)

    @rabbit.subscriber(inputs)
    async def accept(body: dict[str, Any]) -> None:
        async with sessions() as session, session.begin():
            await session.execute(insert(orders), {"order_id": body["order_id"], "amount": body["amount"]})
            await outbox.publish({"order_id": body["order_id"]}, queue="accepted", session=session)

    @outbox.subscriber("accepted", max_workers=relay_workers, fetch_batch_size=fetch_batch, min_fetch_interval=0.01)
    async def relay(body: dict[str, Any]) -> None:
        await rabbit.publish(body, queue=follow_ups)  # confirmed before the outbox row is deleted

    connection = await aio_pika.connect(broker)  # not robust: that one caches passive declares
    try:
        channel = await connection.channel()
        for name in (inputs, follow_ups):
            await channel.declare_queue(name, durable=True)
        exchange = channel.default_exchange
        for n in range(events):
            body = json.dumps({"order_id": f"fs-{n}", "amount": n}).encode()
            await exchange.publish(aio_pika.Message(body, content_type="application/json"), routing_key=inputs)
        started, cpu_started = time.perf_counter(), time.process_time()
        await rabbit.start()  # first: the relay publishes through it
        await outbox.start()
        waiting = await channel.declare_queue(follow_ups, passive=True)
        while waiting.declaration_result.message_count < events:
            await asyncio.sleep(0.01)
            waiting = await channel.declare_queue(follow_ups, passive=True)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await outbox.stop()
        await rabbit.stop()
        for name in (inputs, follow_ups):
            await channel.queue_delete(name)
    finally:
        await connection.close()
        await engine.dispose()
    return {
        "events": events,
        "end_to_end_events_per_s": round(events / elapsed),
        "cpu_ms_per_event": round(1000 * cpu / events, 3),
        "relay_workers": relay_workers,
        "fetch_batch": fetch_batch,
        "inbox": False,
    }


async def _standalone(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    name = f"fs_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(args.database)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await measure(args.database.rsplit("/", 1)[0] + f"/{name}", args.rabbitmq, args.events)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database", default="postgresql://postgres:postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default=RABBITMQ)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_standalone(args)), indent=2))


if __name__ == "__main__":
    main()
