"""The reference shop under load: settled orders/s at saturation and create-to-settled latency
at a fixed rate, per broker and database configuration.

    python bench/shop.py --out bench/results/shop.json
    python bench/shop.py --configs embedded --saturation-orders 1000 --rate 100 --rate-orders 1000

Figures are merged into the JSON file per configuration, so configurations can be run apart.

Each configuration gets a fresh shop (`Supervisor`: five service processes) and a warm-up run;
then `saturation` places orders as fast as 64 concurrent requests allow, `low_rate` at a rate
well below saturation, and `fixed_rate` at `--rate`/s. Latency is the orders service's own
`settled_at - created_at`. From the low rate on, a tap consumer group receives every event
(not at saturation, where it would take the broker's and this process's CPU from the shop
measured): `hops` is
the time from an event's creation (`time`, stamped in the handler) to its consequence's
creation one service further, at the low and at the fixed rate, which splits the end-to-end
latency into its steps. Around the saturation run each process's CPU time and RSS are read from
`/proc` (`proc_stats`): `cpu_at_saturation` has the CPU milliseconds per settled order of every
service and of this process (the load generator and the tap); `machine_at_saturation` has the
cores busy on the whole machine while the orders settled and each broker or database server's CPU
(it competes for the same cores: a shop can be CPU-bound with its services using one core of
two). After the runs, `shop check`
verifies the invariants. Configurations whose adapter or server is missing are reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import proc_stats  # type: ignore[import-not-found]  # bench/ is the script's folder

from services import contracts
from services.check import check
from services.kit.db import drop_databases
from services.kit.service import event_loop_factory
from services.load import LoadReport, percentiles, run_load
from services.settings import DEFAULT_EVENT_LOOP, EVENT_LOOPS, SERVICES, Settings
from services.supervisor import Supervisor, read_ready_file
from tidings.transport import connect

POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432"
LOOPBACK_SSLMODE = "disable"
"""`PGSSLMODE` for the services' connections to the loopback server, unless set already: asyncpg's
default (`prefer`) encrypts every query through asyncio's TLS layer, which cost 30-40% of each
service's CPU at saturation, on a connection that never leaves the machine (and `prefer` checks
no certificate, so it protects nothing that `disable` exposes here). Children inherit it."""
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
MANAGEMENT = "http://127.0.0.1:15672/api"
CONFIGS = ("embedded", "embedded-postgres", "rabbitmq-postgres")
TYPES = [item.event_type for item in vars(contracts).values() if isinstance(item, type) and hasattr(item, "event_type")]


class Tap:
    """A consumer group of its own that records when each event was created and what caused it.

    Its acks run concurrently (`ACKS_IN_FLIGHT` at most), so that the embedded broker's writer
    commits many in one transaction: acked one after another, every event the shop handles cost
    the shared broker file one more write transaction, taken from the services measured beside it."""

    ACKS_IN_FLIGHT = 128

    def __init__(self) -> None:
        self.events: dict[str, tuple[str, float, str | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._acks: set[asyncio.Task[None]] = set()

    async def start(self, broker: str) -> None:
        self.transport = await connect(broker)
        self.subscription = await self.transport.subscribe("bench-tap", TYPES, prefetch=512)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        room = asyncio.Semaphore(self.ACKS_IN_FLIGHT)
        async for delivery in self.subscription:
            envelope = delivery.envelope()
            created = envelope.time.timestamp() if envelope.time else time.time()
            self.events[envelope.id] = (envelope.type, created, envelope.causationid)
            await room.acquire()
            ack = asyncio.create_task(delivery.ack())
            self._acks.add(ack)
            ack.add_done_callback(self._acks.discard)
            ack.add_done_callback(lambda _: room.release())

    def hops(self) -> dict[str, dict[str, float]]:
        steps: dict[str, list[float]] = defaultdict(list)
        for kind, created, cause in self.events.values():
            if cause in self.events:
                parent_kind, parent_created, _ = self.events[cause]
                steps[f"{parent_kind} -> {kind}"].append((created - parent_created) * 1000)
        return {step: {"n": len(values), **percentiles(values)} for step, values in sorted(steps.items())}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._acks:
            await asyncio.wait(set(self._acks))
        await self.subscription.close()
        await self.transport.close()


def _free_port() -> int:
    """A port free now; fixed for the run so that a restarted orders service keeps its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.asynccontextmanager
async def environment(name: str, data_dir: Path) -> AsyncIterator[Settings]:
    """Settings for one configuration on fresh broker state and databases; cleaned up afterwards."""
    prefix = f"shopbench_{os.getpid()}_"
    if name == "embedded":
        yield Settings(data_dir=data_dir, api_port=_free_port())
        return
    if not _reachable(5432):
        raise LookupError("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/services.sh up postgres)")
    if name == "embedded-postgres":
        try:
            yield Settings(data_dir=data_dir, api_port=_free_port(), database=POSTGRES, db_prefix=prefix)
        finally:
            await drop_databases(POSTGRES, prefix, SERVICES)
        return
    import importlib.util

    if importlib.util.find_spec("tidings.transport.rabbitmq") is None:
        raise LookupError("the RabbitMQ adapter (tidings.transport.rabbitmq) does not exist yet")
    if not _reachable(5672):
        raise LookupError("RabbitMQ is not reachable on 127.0.0.1:5672 (scripts/services.sh up rabbitmq)")
    vhost = f"shop-bench-{os.getpid()}"
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=("guest", "guest")) as api:
        (await api.put(f"/vhosts/{vhost}")).raise_for_status()
        grant = {"configure": ".*", "write": ".*", "read": ".*"}
        (await api.put(f"/permissions/{vhost}/guest", json=grant)).raise_for_status()
        try:
            yield Settings(
                data_dir=data_dir,
                api_port=_free_port(),
                broker=f"{RABBITMQ}/{vhost}",
                database=POSTGRES,
                db_prefix=prefix,
            )
        finally:
            await api.delete(f"/vhosts/{vhost}")
            await drop_databases(POSTGRES, prefix, SERVICES)


def _figures(report: LoadReport) -> dict[str, Any]:
    keys = ("orders", "rate", "placed", "settled", "unsettled", "outcomes", "orders_per_second", "latency_ms")
    figures = {key: getattr(report, key) for key in keys}
    figures["post_latency_ms"] = report.post_latency_ms
    figures["refused"] = report.refused
    figures["first_errors"] = report.errors[:3]
    return figures


async def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"shop-bench-{name}-") as directory:
        try:
            async with environment(name, Path(directory) / "data") as settings:
                return await _measure(replace(settings, event_loop=args.event_loop), args)
        except LookupError as missing:
            print(f"{name}: skipped: {missing}")
            return {"skipped": str(missing)}


async def _measure(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Saturation first, with no tap: the tap's group gets every event, which at saturation cost
    RabbitMQ about a third of its CPU per order and this process three quarters of its own, taken
    from the shop being measured. The tap joins for the low and the fixed rate, whose hops it
    measures."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tap = Tap()
    supervisor = Supervisor(settings, say=lambda line: None, log_level="WARNING")
    try:
        api = (await supervisor.start())["api"]
        await run_load(api, 100, 50, show_progress=False)  # warm-up: connections, caches, imports
        await _drained(settings)
        print(f"  saturation: {args.saturation_orders} orders, 64 in flight")
        pids = _pids(settings)
        before, machine_before = proc_stats.Sample.take(pids), proc_stats.Machine.take()
        saturation = await run_load(api, args.saturation_orders, 0, concurrency=64, show_progress=False)
        machine = proc_stats.machine_breakdown(machine_before, proc_stats.Machine.take(), saturation.settled)
        await _drained(settings)
        cpu = proc_stats.cpu_breakdown(before, proc_stats.Sample.take(pids), saturation.settled)
        print(f"  CPU per settled order: {proc_stats.describe(cpu)}")
        print(f"  while the orders settled: {proc_stats.describe_machine(machine)}")
        await tap.start(settings.broker_url())
        print(f"  low rate: {args.low_rate_orders} orders at {args.low_rate:g}/s")
        low = await run_load(api, args.low_rate_orders, args.low_rate, show_progress=False)
        await _quiesce(tap)
        low_hops = tap.hops()
        tap.events.clear()
        print(f"  fixed rate: {args.rate_orders} orders at {args.rate:g}/s")
        fixed = await run_load(api, args.rate_orders, args.rate, show_progress=False)
        await _quiesce(tap)
        fixed_hops = tap.hops()
        found, _ = await check(settings, wait=60, say=lambda line: None)
    finally:
        await supervisor.stop(grace=30)
        await tap.stop()
    result = {
        "broker": settings.broker_url().split("@")[-1],
        "database": "postgresql" if settings.database else "sqlite",
        "saturation": _figures(saturation),
        "fixed_rate": _figures(fixed),
        "low_rate": _figures(low),
        "cpu_at_saturation": cpu,
        "machine_at_saturation": machine,
        "hops_at_low_rate_ms": low_hops,
        "hops_at_fixed_rate_ms": fixed_hops,
        "invariants": "hold" if not found else f"{len(found)} violations, e.g. {found[:3]}",
    }
    print(
        f"  -> {saturation.orders_per_second} settled orders/s at saturation; at {args.rate:g}/s: "
        f"{fixed.orders_per_second}/s, latency {fixed.latency_ms}; at {args.low_rate:g}/s: latency {low.latency_ms}; "
        f"invariants {result['invariants']}"
    )
    return result


def _pids(settings: Settings) -> dict[str, int]:
    """The services' pids from their ready files, and this process's (the load generator and the tap)."""
    pids = {name: int(info["pid"]) for name in SERVICES if (info := read_ready_file(settings, name))}
    return {**pids, "load generator": os.getpid()}


async def _drained(settings: Settings, *, within: float = 120.0) -> None:
    """Wait until every group of the shop has acked everything (two readings in a row, a second
    apart; RabbitMQ's figures are its statistics, a few seconds old): downstream work is done.
    Says so if it never is, since the CPU figures read after it then include the wait."""
    transport = await connect(settings.broker_url())
    try:
        deadline, zeros, backlog = time.monotonic() + within, 0, {}
        while zeros < 2 and time.monotonic() < deadline:
            backlog = await transport.backlog()
            zeros = zeros + 1 if not any(backlog.values()) else 0
            await asyncio.sleep(1.0)
        if zeros < 2:
            print(f"  not drained after {within:g} s: backlog {backlog}")
    finally:
        await transport.close()


async def _quiesce(tap: Tap, *, quiet: float = 2.0, within: float = 120.0) -> None:
    """Wait until no event has reached the tap for `quiet` seconds: downstream work is done."""
    deadline = time.monotonic() + within
    seen = -1
    while len(tap.events) != seen and time.monotonic() < deadline:
        seen = len(tap.events)
        await asyncio.sleep(quiet)


def main() -> int:
    """Parse the options, then run the benchmark on `--load-event-loop`: the load generator shares
    the machine with the shop it measures, and takes 13-17 % less CPU per order on uvloop. It is
    an option of its own, so that `--event-loop` still changes nothing but the services' loop."""
    os.environ.setdefault("PGSSLMODE", LOOPBACK_SSLMODE)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--saturation-orders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rate-orders", type=int, default=1000)
    parser.add_argument("--low-rate", type=float, default=20.0, help="a rate well below saturation, for comparison")
    parser.add_argument("--low-rate-orders", type=int, default=300)
    parser.add_argument(
        "--event-loop", choices=EVENT_LOOPS, default=DEFAULT_EVENT_LOOP, help="the services' loop (ADR 0034)"
    )
    parser.add_argument(
        "--load-event-loop",
        choices=EVENT_LOOPS,
        default=DEFAULT_EVENT_LOOP,
        help="this process's loop: the load generator, the settled feed, the tap (ADR 0034)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/shop.json"))
    args = parser.parse_args()
    unknown = sorted(set(name.strip() for name in args.configs.split(",")) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}: choose from {', '.join(CONFIGS)}")
    with asyncio.Runner(loop_factory=event_loop_factory(args.load_event_loop)) as runner:
        return runner.run(run_all(args))


async def run_all(args: argparse.Namespace) -> int:
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}
    results["goals"] = {"saturation_orders_per_s": 300, "p99_ms_at_100_per_s": 100}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.configs.split(","):
        print(f"{name}:")
        figures = await bench(name.strip(), args)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        results[name] = {
            "when": when,
            "event_loop": args.event_loop,
            "load_event_loop": args.load_event_loop,
            **figures,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each: a later failure keeps these
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
