"""Where a SQLite store's statements run: on the loop's thread inside a write transaction (ADR
0035), against one trip to aiosqlite's thread each (ADR 0033), in the same run.

    python bench/sqlite_statements.py --out bench/results/sqlite_statements.json

Each transaction is five inserts and a select by primary key through SQLAlchemy Core, the shape
of a handler's unit of work; `--tasks` of them run at once on one store (its one connection),
on uvloop as the shop's services do. `trips` turns the loop-side path off on the connection
(`statements_here = False`), so `BEGIN`, each statement and `COMMIT` are one trip each; `here`
is the store as it ships. Rounds alternate the two; the medians and their ratio are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from tidings.store import Store
from tidings.store.sqlite_cursor import LoopSideConnection

METADATA = MetaData()
ROWS = Table("bench_rows", METADATA, Column("id", Integer, primary_key=True), Column("name", String(64)))
ADD, READ = insert(ROWS), select(ROWS.c.name).where(ROWS.c.id == 1)


async def _driver(store: Store) -> LoopSideConnection:
    async with store.engine.connect() as db:
        driver = (await db.get_raw_connection()).driver_connection
    assert isinstance(driver, LoopSideConnection), type(driver)
    return driver


async def measure(store: Store, transactions: int, tasks: int) -> dict[str, float]:
    """`transactions` units of work, `tasks` at a time: transactions/s and CPU ms per transaction."""

    async def unit(number: int) -> None:
        async with store.engine.begin() as db:
            for row in range(5):
                await db.execute(ADD, {"name": f"{number}-{row}"})
            await db.execute(READ)

    async def worker(numbers: range) -> None:
        for number in numbers:
            await unit(number)

    share = transactions // tasks
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(range(n * share, (n + 1) * share)) for n in range(tasks)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = share * tasks
    return {"transactions_per_s": round(done / wall), "cpu_ms_per_transaction": round(1000 * cpu / done, 3)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {"trips": [], "here": []}
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
        store = await Store.open(f"sqlite:///{Path(directory) / 'bench.db'}", metadata=METADATA)
        try:
            driver = await _driver(store)
            await measure(store, 200, args.tasks)  # warm up: statement caches, page cache
            for _ in range(args.rounds):
                for mode in samples:
                    driver.statements_here = mode == "here"
                    samples[mode].append(await measure(store, args.transactions, args.tasks))
        finally:
            await store.close()
    medians = {
        mode: {key: statistics.median(sample[key] for sample in runs) for key in runs[0]}
        for mode, runs in samples.items()
    }
    return {
        "transactions": args.transactions,
        "tasks": args.tasks,
        "rounds": args.rounds,
        "medians": medians,
        "samples": samples,
        "ratios": {
            "throughput_here_vs_trips": round(
                medians["here"]["transactions_per_s"] / medians["trips"]["transactions_per_s"], 3
            ),
            "cpu_here_vs_trips": round(
                medians["here"]["cpu_ms_per_transaction"] / medians["trips"]["cpu_ms_per_transaction"], 3
            ),
        },
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args()
    figures = uvloop.run(main(args))
    for mode, median in figures["medians"].items():
        print(
            f"{mode:>5}: {median['transactions_per_s']:,.0f} transactions/s, "
            f"{median['cpu_ms_per_transaction']:.3f} ms CPU each"
        )
    print(f"here / trips: {figures['ratios']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    cli()
