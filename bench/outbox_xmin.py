"""The outbox on PostgreSQL under a held xmin: does the relay stall, does the outbox bloat without bound?

    python bench/outbox_xmin.py --seconds 60 --out bench/results/outbox_xmin.json

A long transaction elsewhere in the service's database keeps vacuum from removing any row
version deleted after it began. The outbox is a queue table (every row is inserted, then
deleted once published) and the relay updates its `tidings_relay` row every cycle, so both
collect dead versions for as long as the transaction stays open.

One fresh database, a steady load of `--rate` transactions per second with `--per-tx` events
each (written by `outbox.add`, each commit followed by `relay.wake()`, as the runtime does),
one relay publishing to an in-memory broker with no subscriber (so the broker costs nothing and
the figures are the database's), and three phases of `--seconds` each:

1. `baseline`: nothing else open in the database;
2. `held_xmin`: another connection holds `BEGIN ISOLATION LEVEL REPEATABLE READ;
   SELECT txid_current();` open for the whole phase;
3. `released`: that transaction has committed; autovacuum may catch up (its naptime is 1 min).

Every 5 s a sample: `pg_total_relation_size`, `n_live_tup` and `n_dead_tup` of `tidings_outbox`
and `tidings_relay`, the outbox backlog, and the execution time and buffers of the relay's read
(`EXPLAIN (ANALYZE, BUFFERS)` of its `SELECT ... ORDER BY id LIMIT 500`). Per phase: rows/s
offered and published, commit-to-publish delay p50/p99/max, relay cycle time p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tidings.envelope import Envelope
from tidings.events import Event
from tidings.store import Store, outbox
from tidings.store.relay import Relay
from tidings.transport import connect

SERVER = "postgresql://postgres:postgres@127.0.0.1:5432"
SOURCE = "bench-xmin"
PHASES = ("baseline", "held_xmin", "released")
TABLES = ("tidings_outbox", "tidings_relay")
READ = (
    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id, headers, body, created_at FROM tidings_outbox"
    " WHERE source = $1 ORDER BY id LIMIT 500"
)
SETTINGS = ("autovacuum", "autovacuum_naptime", "autovacuum_vacuum_threshold", "autovacuum_vacuum_scale_factor")


class Shipped(Event, type="bench.xmin.shipped", version=1):
    order_id: str
    note: str

    def subject(self) -> str:
        return self.order_id


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.phase = PHASES[0]
        self.offered: defaultdict[str, int] = defaultdict(int)
        self.published: defaultdict[str, int] = defaultdict(int)
        self.delays: defaultdict[str, list[float]] = defaultdict(list)
        self.cycles: defaultdict[str, list[float]] = defaultdict(list)
        self.samples: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def on_published(self, rows: Any, confirmed_at: float) -> None:
        self.published[self.phase] += len(rows)
        self.delays[self.phase].extend(confirmed_at - row.created_at for row in rows)

    def timed(self, relay: Relay) -> None:
        original = relay.run_once

        async def run_once() -> int:
            began = time.perf_counter()
            count = await original()
            if count:
                self.cycles[self.phase].append(time.perf_counter() - began)
            return count

        relay.run_once = run_once  # type: ignore[method-assign]

    async def write(self, store: Store, relay: Relay, stop: asyncio.Event) -> None:
        """`rate` transactions per second on an absolute schedule (catching up if late)."""
        interval, due, n = 1.0 / self.args.rate, time.monotonic(), 0
        note = "x" * self.args.payload
        while not stop.is_set():
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            envelopes = []
            for _ in range(self.args.per_tx):
                n += 1
                envelopes.append(Envelope.wrap(Shipped(order_id=f"o-{n % 64}", note=note), source=SOURCE))
            async with store.session() as session, session.begin():
                await outbox.add(session, envelopes)
            relay.wake()
            self.offered[self.phase] += len(envelopes)

    async def sample(self, probe: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            row: dict[str, Any] = {"t": round(time.monotonic() - self.started, 1), "phase": self.phase}
            stats = await probe.fetch(
                "SELECT relname, pg_total_relation_size(relid) AS bytes, n_live_tup, n_dead_tup, autovacuum_count"
                " FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
                list(TABLES),
            )
            for stat in stats:
                row[stat["relname"]] = {
                    "bytes": stat["bytes"],
                    "live": stat["n_live_tup"],
                    "dead": stat["n_dead_tup"],
                    "autovacuums": stat["autovacuum_count"],
                }
            row["pending"] = await probe.fetchval("SELECT count(*) FROM tidings_outbox")
            [plan] = json.loads(await probe.fetchval(READ, SOURCE))
            row["read_ms"] = round(plan["Execution Time"], 3)
            row["read_buffers"] = plan["Plan"].get("Shared Hit Blocks", 0) + plan["Plan"].get("Shared Read Blocks", 0)
            self.samples.append(row)
            print(json.dumps(row), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)

    def summary(self, phase: str, seconds: float) -> dict[str, Any]:
        delays, cycles = self.delays[phase], self.cycles[phase]
        ends = [s for s in self.samples if s["phase"] == phase]
        last = ends[-1] if ends else {}
        return {
            "seconds": round(seconds, 1),
            "offered_rows_per_s": round(self.offered[phase] / seconds, 1),
            "published_rows_per_s": round(self.published[phase] / seconds, 1),
            "delay_ms": {
                "p50": _ms(_quantile(delays, 0.5)),
                "p99": _ms(_quantile(delays, 0.99)),
                "max": _ms(max(delays, default=None)),
            },
            "cycle_ms": {
                "p50": _ms(_quantile(cycles, 0.5)),
                "p99": _ms(_quantile(cycles, 0.99)),
                "cycles": len(cycles),
            },
            "end": {name: last.get(name) for name in (*TABLES, "pending", "read_ms", "read_buffers")},
            "read_ms_first_last": [ends[0]["read_ms"], last["read_ms"]] if ends else None,
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"tidings_bench_xmin_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    bench = Bench(args)
    try:
        store = await Store.open(url)
        transport = await connect(f"memory://{name}")
        relay = Relay(store, transport, source=SOURCE)
        relay.on_published = bench.on_published
        bench.timed(relay)
        probe = await asyncpg.connect(url)
        holder = await asyncpg.connect(url)
        settings = {setting: await probe.fetchval(f"SHOW {setting}") for setting in SETTINGS}
        version = await probe.fetchval("SHOW server_version")
        stop = asyncio.Event()
        await relay.start()
        tasks = [asyncio.create_task(bench.write(store, relay, stop)), asyncio.create_task(bench.sample(probe, stop))]
        phases: dict[str, Any] = {}
        held: dict[str, Any] = {}
        try:
            for phase in PHASES:
                bench.phase = phase
                if phase == "held_xmin":
                    await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    held["xid"] = await holder.fetchval("SELECT txid_current()")
                began = time.monotonic()
                await asyncio.sleep(args.seconds)
                if phase == "held_xmin":
                    held["xmin_age_at_end"] = await probe.fetchval(
                        "SELECT max(age(backend_xmin)) FROM pg_stat_activity WHERE datname = current_database()"
                    )
                    await holder.execute("COMMIT")
                phases[phase] = time.monotonic() - began
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await relay.stop()
            await holder.close()
            await probe.close()
            await transport.close()
            await store.close()
        return {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
            "postgres": {"version": version, **settings},
            "load": {
                "tx_per_s": args.rate,
                "events_per_tx": args.per_tx,
                "payload_bytes": args.payload,
                "phase_seconds": args.seconds,
                "broker": "memory, no subscriber",
            },
            "held_transaction": held,
            "phases": {phase: bench.summary(phase, seconds) for phase, seconds in phases.items()},
            "relay_failures": relay.stats["failures"],
            "samples": bench.samples,
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each of the three phases")
    parser.add_argument("--rate", type=float, default=100.0, help="transactions per second")
    parser.add_argument("--per-tx", type=int, default=2, help="events per transaction")
    parser.add_argument("--payload", type=int, default=200, help="bytes of filler in each event")
    parser.add_argument("--out", type=Path, default=Path("bench/results/outbox_xmin.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["phases"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
