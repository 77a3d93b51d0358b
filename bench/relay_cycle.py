"""The outbox relay's own cost: CPU and wall time per cycle of `--batch` rows, nothing else running.

    python bench/relay_cycle.py --database all --cycles 300

Commits `cycles` transactions of `batch` events each, then times `Relay.run_once()` (read,
publish to the in-memory broker, delete) once per transaction's rows. The handler path and the
broker's own costs are left out, so the figure moves little with other load on the machine;
`--profile` prints a pyinstrument profile of the timed cycles. PostgreSQL: a fresh database on
--postgres (default the local server), dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tidings.envelope import Envelope
from tidings.events import Event
from tidings.store import Store, outbox
from tidings.store.relay import Relay, RelayConfig
from tidings.transport import connect

POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"


class Shipped(Event, type="bench.relay.shipped", version=1):
    n: int
    key: str

    def subject(self) -> str:
        return self.key


@asynccontextmanager
async def database(kind: str, admin_url: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tidings-relay-") as directory:
            yield f"sqlite:///{directory}/service.db"
        return
    import asyncpg

    name = f"tidings_relay_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}?sslmode=disable"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def measure(kind: str, args: argparse.Namespace) -> None:
    async with database(kind, args.postgres) as url:
        store = await Store.open(url)
        broker = await connect(f"memory://relay-bench-{uuid.uuid4().hex}")
        relay = Relay(store, broker, source="bench", config=RelayConfig(batch_size=args.batch))
        await relay.open()
        try:
            for cycle in range(args.cycles + 1):
                events = [Shipped(n=n, key=f"k{cycle}-{n}") for n in range(args.batch)]
                async with store.session() as session, session.begin():
                    await outbox.add(session, [Envelope.wrap(event, source="bench") for event in events])
            assert await relay.run_once() == args.batch  # warm up: connections, statement caches
            profiler = None
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002)
                profiler.start()
            walls: list[float] = []
            cpu_started = time.process_time()
            for _ in range(args.cycles):
                started = time.perf_counter()
                if await relay.run_once() != args.batch:
                    raise SystemExit("a cycle published less than a batch")
                walls.append(time.perf_counter() - started)
            cpu = time.process_time() - cpu_started
            if profiler is not None:
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
        finally:
            await relay.close()
            await broker.close()
            await store.close()
    walls.sort()
    print(
        f"{kind:<10} {args.cycles} cycles of {args.batch}: CPU {1000 * cpu / args.cycles:.3f} ms per cycle"
        f" ({1000 * cpu / args.cycles / args.batch:.3f} ms per event), wall p50 {1000 * statistics.median(walls):.2f}"
        f" p99 {1000 * walls[int(0.99 * (len(walls) - 1))]:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--postgres", default=POSTGRES, help="admin URL of the PostgreSQL server")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the timed cycles")
    args = parser.parse_args()
    for kind in ["sqlite", "postgres"] if args.database == "all" else [args.database]:
        asyncio.run(measure(kind, args))


if __name__ == "__main__":
    main()
