"""The reliable path end to end: a service handles an event, writes a row and publishes one
follow-up event, with inbox claim and outbox in one transaction, and the relay publishing.

    python bench/reliable_path.py --database postgres --events 20000 --out bench/results/reliable_path.json

The input events are published to the broker first (not timed); then the service is started and
the clock runs until the relay has published every follow-up. Reported per database:
`handled_events_per_s` (deliveries handled and acked), `end_to_end_events_per_s` (until the
last follow-up is confirmed by the broker) and the relay's commit-to-publish delay (from
`outbox.add`, just before the commit, to the broker's confirmation) at that load, p50/p99/max.
Figures are merged into the JSON file under the database's name ({"sqlite": ..., "postgres": ...}).
PostgreSQL: a fresh database is created on --postgres (default the local server) and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faststream_peer  # type: ignore[import-not-found]  # bench/ is the script's folder
import raw_floor  # type: ignore[import-not-found]
from collector import COLLECTOR  # type: ignore[import-not-found]
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from services.kit.service import event_loop_factory
from services.settings import EVENT_LOOPS
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.runtime.heap import freeze_start_up_heap
from tidings.service import Service
from tidings.store import Prepared, Store
from tidings.store.outbox import OutboxRow
from tidings.store.sqlite_cursor import rows_of
from tidings.store.sqlite_cursor import run as run_statement
from tidings.transport import Transport, connect

POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
MANAGEMENT = "http://127.0.0.1:15672/api"

metadata = MetaData()
orders = Table(
    "bench_orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
    Column("amount", Integer, nullable=False),
)


class OrderPlaced(Event, type="bench.order.placed", version=1):
    order_id: str
    amount: int

    def subject(self) -> str:
        return self.order_id


class OrderAccepted(Event, type="bench.order.accepted", version=1):
    order_id: str

    def subject(self) -> str:
        return self.order_id


@asynccontextmanager
async def sqlite_database(directory: Path, args: argparse.Namespace) -> AsyncIterator[str]:
    yield f"sqlite:///{directory / 'service.db'}"


@asynccontextmanager
async def postgres_database(directory: Path, args: argparse.Namespace) -> AsyncIterator[str]:
    import asyncpg

    name = f"tidings_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(args.postgres)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield args.postgres.rsplit("/", 1)[0] + f"/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


DATABASES = {"sqlite": sqlite_database, "postgres": postgres_database}


ADD_ORDER = insert(orders)
PREPARED_ADD_ORDER = Prepared(ADD_ORDER)


ADD_ORDER_SQL = {
    "postgres": "INSERT INTO bench_orders (order_id, amount) VALUES ($1, $2)",
    "sqlite": "INSERT INTO bench_orders (order_id, amount) VALUES (?, ?)",
}


def service(broker: str, database: str, concurrency: int, handler: str = "orm") -> Service:
    """The benchmarked service. `handler` "orm" writes its row through the ORM session
    (`ctx.session.execute`), "core" through the same transaction's Core connection
    (`ctx.connection.execute`), which skips the ORM's per-statement work, "prepared" the same
    statement as `tidings.store.Prepared` (compiled once, run on the driver), and "driver" with the
    driver under that connection (asyncpg, or the SQLite store's own statement runner), as the
    raw floor writes it: what is left is Tidings' own work per event."""
    bench = Service("bench", broker=broker, database=database, concurrency=concurrency)

    if handler == "driver":
        sql = ADD_ORDER_SQL["sqlite" if database.startswith("sqlite") else "postgres"]

        @bench.on(OrderPlaced)
        async def accept_on_driver(order: OrderPlaced, ctx: Context) -> None:
            driver = (await ctx.connection.get_raw_connection()).driver_connection
            if database.startswith("sqlite"):
                await run_statement(driver, rows_of, sql, (order.order_id, order.amount))
            else:
                await driver.execute(sql, order.order_id, order.amount)  # type: ignore[union-attr]
            ctx.publish(OrderAccepted(order_id=order.order_id))

    elif handler == "prepared":

        @bench.on(OrderPlaced)
        async def accept_prepared(order: OrderPlaced, ctx: Context) -> None:
            await PREPARED_ADD_ORDER.execute(ctx.connection, {"order_id": order.order_id, "amount": order.amount})
            ctx.publish(OrderAccepted(order_id=order.order_id))

    elif handler == "core":

        @bench.on(OrderPlaced)
        async def accept_on_connection(order: OrderPlaced, ctx: Context) -> None:
            await ctx.connection.execute(ADD_ORDER, {"order_id": order.order_id, "amount": order.amount})
            ctx.publish(OrderAccepted(order_id=order.order_id))

    else:

        @bench.on(OrderPlaced)
        async def accept(order: OrderPlaced, ctx: Context) -> None:
            await ctx.session.execute(ADD_ORDER, {"order_id": order.order_id, "amount": order.amount})
            ctx.publish(OrderAccepted(order_id=order.order_id))

    return bench


async def measure(broker: str, database: str, args: argparse.Namespace) -> dict[str, Any]:
    store = await Store.open(database, metadata=metadata)  # migrations and tables, not timed
    await store.close()
    transport = await connect(broker)
    try:
        for group, event_type in (("bench", OrderPlaced.event_type), ("sink", OrderAccepted.event_type)):
            await (await transport.subscribe(group, [event_type])).close()  # declare the groups
        floors = [await floor(database, args)]
        saturated = await phase(transport, broker, database, args, "saturated", args.events, rate=0)
        floors.append(await floor(database, args))
        rate = args.rate or max(50, saturated["handled_events_per_s"] // 2)
        paced = await phase(transport, broker, database, args, "paced", max(200, min(args.events, 5 * rate)), rate)
    finally:
        await transport.close()
    floor_rate = statistics.median(f["one_per_transaction"]["events_per_s"] for f in floors)
    ratios = {
        "handled_vs_floor": round(saturated["handled_events_per_s"] / floor_rate, 3),
        "end_to_end_vs_floor": round(saturated["end_to_end_events_per_s"] / floor_rate, 3),
    }
    figures = {
        "concurrency": args.concurrency,
        "handler": args.handler,
        "saturated": saturated,
        "paced": paced,
        "floor": floors,
    }
    if broker.startswith("amqp") and not database.startswith("sqlite"):
        peer = await faststream_peer.measure(database, broker, args.events)
        figures["faststream_outbox"] = peer
        ratios["end_to_end_vs_faststream_outbox"] = round(
            saturated["end_to_end_events_per_s"] / peer["end_to_end_events_per_s"], 3
        )
    return {**figures, "ratios": ratios}


async def floor(database: str, args: argparse.Namespace) -> dict[str, Any]:
    """The raw-driver floor (`raw_floor.py`) on the same database, one and ten events per transaction."""
    figures = {}
    for label, per_transaction in (("one_per_transaction", 1), ("ten_per_transaction", 10)):
        if database.startswith("sqlite"):
            figures[label] = await asyncio.to_thread(
                raw_floor.sqlite, database.removeprefix("sqlite:///"), args.events, per_transaction=per_transaction
            )
        else:
            figures[label] = await raw_floor.postgres(database, args.events, per_transaction=per_transaction)
    return figures


async def phase(
    transport: Transport, broker: str, database: str, args: argparse.Namespace, name: str, events: int, rate: int
) -> dict[str, Any]:
    """Run the service until it published `events` follow-ups. `rate` 0: every input is on the
    broker before the service starts (saturation); otherwise inputs arrive at `rate` per second."""
    inputs = [Envelope.wrap(OrderPlaced(order_id=f"{name}-{n}", amount=n), source="shop") for n in range(events)]
    if not rate:
        for start in range(0, len(inputs), 500):
            await transport.publish(inputs[start : start + 500])

    delays: list[float] = []
    waits: list[float] = []  # commit to the start of the cycle that published the row
    published = asyncio.Event()

    def on_published(rows: Sequence[OutboxRow], confirmed_at: float) -> None:
        delays.extend(confirmed_at - row.created_at for row in rows)
        waits.extend(bench.relay.cycle_started_at - row.created_at for row in rows)  # type: ignore[union-attr]
        if len(delays) >= events:
            published.set()

    bench = service(broker, database, args.concurrency, args.handler)
    profiler = None
    if args.profile and not rate:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
        profiler.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    await bench.start()
    if args.freeze_heap:  # what `Service.run()` does once started (ADR 0038)
        freeze_start_up_heap()
    collected = COLLECTOR.total
    full_collections = COLLECTOR.full_collections
    COLLECTOR.reset_longest()
    bench.relay.on_published = on_published  # type: ignore[union-attr]
    producer = asyncio.create_task(produce(transport, inputs, rate)) if rate else None
    handled_at = None
    while not published.is_set():
        if handled_at is None and bench.stats["handled"] >= events:
            handled_at = time.perf_counter()
        await asyncio.sleep(0.005)
    finished, cpu_used = time.perf_counter(), time.process_time() - cpu_started
    collector = {
        "collector_us_per_event": round(1e6 * (COLLECTOR.total - collected) / events, 1),
        "longest_collection_ms": round(1000 * COLLECTOR.longest, 1),
        "full_collections": COLLECTOR.full_collections - full_collections,
        "heap_frozen": args.freeze_heap,
    }
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    if producer is not None:
        await producer
    relay_stats = dict(bench.relay.stats)  # type: ignore[union-attr]
    await bench.stop()
    gc.unfreeze()  # each phase starts as a fresh service process would; the floor is never frozen
    backlog = await transport.backlog()
    settle_by = time.monotonic() + 15  # RabbitMQ's counts lag its acks by a few seconds
    while backlog.get("bench") and time.monotonic() < settle_by:
        await asyncio.sleep(0.5)
        backlog = await transport.backlog()
    if bench.stats["handled"] != events or backlog.get("bench") != 0:
        raise SystemExit(f"{name}: handled {bench.stats['handled']} of {events} events; backlog {backlog}")
    cycles = sorted(d - w for d, w in zip(delays, waits, strict=True))
    result: dict[str, Any] = {
        "events": events,
        "commit_to_publish_ms": _spread(delays),
        "commit_to_cycle_start_ms": _spread(waits),
        "cycle_ms": _spread(cycles),
        "cpu_ms_per_event": round(1000 * cpu_used / events, 3),
        "mean_relay_batch": round(events / max(1, relay_stats.get("batches", 1)), 1),
        **collector,
    }
    if rate:
        result["rate_events_per_s"] = rate
    else:
        result["handled_events_per_s"] = round(events / ((handled_at or finished) - started))
        result["end_to_end_events_per_s"] = round(events / (finished - started))
    return result


def _spread(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50": round(1000 * statistics.median(ordered), 2),
        "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
        "max": round(1000 * ordered[-1], 2),
    }


async def produce(transport: Transport, inputs: Sequence[Envelope], rate: int) -> None:
    """Publish `inputs` at `rate` per second, in small batches every 10 ms."""
    per_tick, started = max(1, rate // 100), time.perf_counter()
    for index in range(0, len(inputs), per_tick):
        await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
        await transport.publish(inputs[index : index + per_tick])


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }


def merge(out: Path, name: str, result: dict[str, Any]) -> None:
    """Replace this database's entry in `out`, keeping the others'; written atomically."""
    data = json.loads(out.read_text()) if out.exists() else {}
    data[name] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    temporary.replace(out)


@asynccontextmanager
async def broker_url(kind: str, directory: str) -> AsyncIterator[str]:
    """The broker of one run; RabbitMQ: a virtual host of its own (the server is shared), deleted after."""
    if kind == "memory":
        yield f"memory://bench-{uuid.uuid4().hex}"
        return
    if kind == "sqlite":
        yield f"sqlite:///{directory}/broker.db"
        return
    import httpx

    vhost = f"reliable-bench-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=("guest", "guest")) as api:
        (await api.put(f"/vhosts/{vhost}")).raise_for_status()
        (
            await api.put(f"/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
        ).raise_for_status()
        try:
            yield f"{RABBITMQ}/{vhost}"
        finally:
            await api.delete(f"/vhosts/{vhost}")


async def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
        async with broker_url(args.broker, directory) as broker, DATABASES[name](Path(directory), args) as database:
            figures = await measure(broker, database, args)
    return {
        **figures,
        "broker": args.broker,
        "event_loop": args.event_loop,
        "machine": machine(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def result_key(database: str, args: argparse.Namespace) -> str:
    """The run's entry in the results file: the database, then what differs from the default run
    (`postgres`, `postgres_rabbitmq`, `postgres_memory_core_c64`, ...)."""
    parts = [database]
    if args.broker != "sqlite":
        parts.append(args.broker)
    if args.handler != "orm":
        parts.append(args.handler)
    if args.concurrency != 16:
        parts.append(f"c{args.concurrency}")
    if args.event_loop != "asyncio":
        parts.append(args.event_loop)
    return "_".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=[*DATABASES, "all"], default="all")
    parser.add_argument(
        "--broker",
        choices=["sqlite", "memory", "rabbitmq"],
        default="sqlite",
        help="rabbitmq (with --database postgres): FastStream + faststream-outbox runs the same job in the run too",
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16, help="the service's handler concurrency")
    parser.add_argument(
        "--handler",
        choices=["orm", "core", "prepared", "driver"],
        default="orm",
        help="how the handler writes its row: the ORM session, the same transaction's Core connection, "
        "the same statement Prepared, or its driver",
    )
    parser.add_argument(
        "--rate", type=int, default=0, help="events/s of the paced latency run (default: half the saturated rate)"
    )
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default="asyncio",
        help="the loop of the whole run: Tidings, the raw floor and the peer alike (ADR 0034)",
    )
    parser.add_argument(
        "--no-freeze-heap",
        dest="freeze_heap",
        action="store_false",
        help="leave the collector alone after the service started (`Service.run()` freezes the heap, ADR 0038)",
    )
    parser.add_argument("--postgres", default=POSTGRES, help="admin URL of the PostgreSQL server")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the run")
    parser.add_argument("--out", type=Path, help="merge the figures into this JSON file")
    args = parser.parse_args()

    names = list(DATABASES) if args.database == "all" else [args.database]
    print(f"{'database':<10}{'events':>8}{'handled/s':>11}{'end-to-end/s':>14}{'cpu ms/ev':>11}  commit-to-publish")
    for name in names:
        with asyncio.Runner(loop_factory=event_loop_factory(args.event_loop)) as runner:
            result = runner.run(run(name, args))
        saturated, paced = result["saturated"], result["paced"]
        print(
            f"{name:<10}{args.events:>8}{saturated['handled_events_per_s']:>11,}"
            f"{saturated['end_to_end_events_per_s']:>14,}{saturated['cpu_ms_per_event']:>11}"
            f"  p50/p99 {saturated['commit_to_publish_ms']['p50']}/{saturated['commit_to_publish_ms']['p99']} ms"
            f" saturated, {paced['commit_to_publish_ms']['p50']}/{paced['commit_to_publish_ms']['p99']} ms"
            f" at {paced['rate_events_per_s']}/s"
        )
        wait, cycle = paced["commit_to_cycle_start_ms"], paced["cycle_ms"]
        print(
            f"{'':<10}at {paced['rate_events_per_s']}/s: commit to cycle start p50/p99 {wait['p50']}/{wait['p99']} ms,"
            f" cycle (read, publish, confirm) {cycle['p50']}/{cycle['p99']} ms"
        )
        print(
            f"{'':<10}collector ({'heap frozen' if args.freeze_heap else 'heap not frozen'}):"
            f" {saturated['collector_us_per_event']} µs/event saturated, {saturated['full_collections']} full,"
            f" longest pause {saturated['longest_collection_ms']}/{paced['longest_collection_ms']} ms saturated/paced"
        )
        floors = ", ".join(f"{f['one_per_transaction']['events_per_s']:,}" for f in result["floor"])
        print(
            f"{'':<10}raw floor (1 event/transaction) {floors}/s before/after;"
            f" Tidings handled {result['ratios']['handled_vs_floor']}x the floor"
        )
        if "faststream_outbox" in result:
            peer = result["faststream_outbox"]
            print(
                f"{'':<10}FastStream + faststream-outbox (no inbox) {peer['end_to_end_events_per_s']:,}/s end to end;"
                f" Tidings (inbox included) {result['ratios']['end_to_end_vs_faststream_outbox']}x"
            )
        if args.out is not None:
            merge(args.out, result_key(name, args), result)
    if args.out is not None:
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
