"""One chaos run: the shop under steady load while the injector kills, restarts and cuts; then
no more faults, every order settles (bounded), the strict `shop check` runs, and the figures go
into a report.

Two kinds of run: `rabbitmq-postgres` (the private RabbitMQ node, PostgreSQL databases
`tidings_chaos_<service>` dropped first, the broker and database connections through TCP
proxies) and `sqlite` (the embedded broker and SQLite databases; no broker to restart). The
orders API is behind a proxy in both, so cuts lose responses that the load generator retries
with their Idempotency-Key. The shop runs in a fresh `data/chaos/<run>` directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.chaos.faults import Injector
from services.chaos.proxy import TcpProxy
from services.chaos.rabbit import PrivateRabbit
from services.chaos.stats import StatsCollector, logged_problems
from services.check import check
from services.invariants import deadline_cancelled
from services.kit.db import drop_databases
from services.load import ACCEPTED_FILE, read_accepted, run_load
from services.settings import DEFAULT_EVENT_LOOP, SERVICES, Settings
from services.supervisor import Supervisor

POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432"
DB_PREFIX = "tidings_chaos_"


@dataclass(frozen=True)
class RunConfig:
    name: str  # rabbitmq-postgres or sqlite
    rate: float = 8.0
    kills_per_service: int = 3
    extra_kills: int = 1
    pause: tuple[float, float] = (1.0, 3.0)
    network_every: tuple[float, float] = (3.0, 8.0)
    settle_within: float = 120.0
    deadline: float = 30.0
    concurrency: int = 8
    """Deliveries in flight per service: 8 keeps the PostgreSQL connections (pool = 10 each) modest."""
    event_loop: str = DEFAULT_EVENT_LOOP
    """The loop every service runs on (`Settings.event_loop`): either gets the same faults."""

    @property
    def rabbitmq(self) -> bool:
        return self.name == "rabbitmq-postgres"


async def chaos_run(config: RunConfig, seed: int, root: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    began = time.monotonic()
    data = root / config.name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    rabbit = PrivateRabbit() if config.rabbitmq else None
    proxies: dict[str, TcpProxy] = {}
    async with contextlib.AsyncExitStack() as stack:
        settings = Settings(
            data_dir=data,
            api_port=_free_port(),
            deadline=config.deadline,
            concurrency=config.concurrency,
            metrics_port=0,
            event_loop=config.event_loop,
        )
        direct = settings  # what `check` reads, around the proxies
        if rabbit is not None:
            say(f"starting the private RabbitMQ node {rabbit.node} on 127.0.0.1:{rabbit.port}")
            stack.push_async_callback(rabbit.stop)
            await rabbit.start(fresh=True)
            await drop_databases(POSTGRES, DB_PREFIX, SERVICES)
            proxies["rabbitmq"] = await _proxy(stack, "rabbitmq", rabbit.port)
            proxies["postgres"] = await _proxy(stack, "postgres", 5432)
            pg = proxies["postgres"].port
            settings = replace(
                settings,
                broker=rabbit.broker_url(proxies["rabbitmq"].port),
                database=f"postgresql://postgres:postgres@127.0.0.1:{pg}",
                db_prefix=DB_PREFIX,
            )
            direct = replace(settings, broker=rabbit.broker_url(), database=POSTGRES)
        proxies["api"] = await _proxy(stack, "api", settings.api_port)
        log = (data / "chaos.log").open("a", encoding="utf-8")
        stack.callback(log.close)

        def note(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        supervisor = Supervisor(settings, log_level="INFO", say=note)
        stack.push_async_callback(supervisor.stop)
        await supervisor.start(ready_within=120)
        say(f"{config.name}: shop up in {time.monotonic() - began:.1f}s; load {config.rate:g} orders/s, seed {seed}")
        stats = StatsCollector(settings)
        collecting = asyncio.create_task(stats.run())
        stack.push_async_callback(_cancel, collecting)
        stop = asyncio.Event()
        accepted = data / ACCEPTED_FILE
        loading = asyncio.create_task(
            run_load(
                f"http://127.0.0.1:{proxies['api'].port}",
                10**6,
                config.rate,
                seed=seed,
                settle_timeout=config.settle_within,
                show_progress=False,
                accepted_file=accepted,
                stop=stop,
            )
        )
        stack.push_async_callback(_cancel, loading)
        await _until(lambda: len(read_accepted(accepted) or ()) >= 3 * config.rate, within=60)  # steady load first
        injector = Injector(
            seed,
            supervisor,
            proxies=proxies,
            rabbit=rabbit,
            kills_per_service=config.kills_per_service,
            extra_kills=config.extra_kills,
            pause=config.pause,
            network_every=config.network_every,
            say=lambda line: say(f"  {line}"),
        )
        faults = await injector.run()
        stop.set()
        say(f"{config.name}: {len(faults)} faults injected; waiting for every order to settle")
        load = await loading
        settled_after = time.monotonic() - injector.last_cleared
        lines: list[str] = []
        violations, snapshot = await check(direct, wait=60.0, say=lines.append)
        quiet_after = time.monotonic() - injector.last_cleared
        await stats.final()
        found = set(read_accepted(accepted) or ()) & set(snapshot.orders)
        unaccounted = len(snapshot.orders) - len(found)
        if unaccounted > load.refused:  # an order nobody was told about, beyond the requests given up on
            violations.append(
                f"{unaccounted} orders in the database were never accepted (retries placed orders twice?)"
            )
        restarts = {name: child.restarts for name, child in supervisor.children.items()}
    duplicates = stats.totals("duplicates")
    return {
        "run": config.name,
        "seed": seed,
        "event_loop": config.event_loop,
        "duration_s": round(time.monotonic() - began, 1),
        "load": {"rate": config.rate, "duration_s": load.duration_s},
        "orders": {
            "placed": load.orders,
            "accepted": load.placed,
            "found": len(found),
            "in_database": len(snapshot.orders),
            "refused": load.refused,
            "requests_retried": load.retried,
            "retry_reasons": load.retry_reasons,
            "responses_replayed": load.replayed,
            "outcomes": load.outcomes,
            "unsettled_at_load_end": load.unsettled,
            "latency_ms": load.latency_ms,
        },
        "faults": dict(Counter(fault.kind for fault in faults)),
        "kills_by_service": dict(Counter(fault.target for fault in faults if fault.kind == "kill")),
        "restarts_by_service": restarts,
        "duplicates_absorbed": {"total": sum(duplicates.values()), "by_service": duplicates},
        "processes_seen": stats.processes(),
        "deadline_cancelled": {
            "count": deadline_cancelled(snapshot),
            "share": round(deadline_cancelled(snapshot) / max(1, len(snapshot.orders)), 4),
        },
        "time_to_settle_s": {
            "orders": round(settled_after, 1),  # every accepted order confirmed or cancelled
            "everything": round(quiet_after, 1),  # and the strict check passed (no backlog, ...)
        },
        "violations": violations,
        "check": lines,
        "logged_problems": logged_problems(settings.log_dir),
        "fault_log": [fault.to_json() for fault in faults],
        "load_errors": load.errors[:10],
    }


async def _proxy(stack: contextlib.AsyncExitStack, name: str, port: int) -> TcpProxy:
    proxy = await TcpProxy("127.0.0.1", port, name=name).start()
    stack.push_async_callback(proxy.close)
    return proxy


async def _until(condition: Callable[[], bool], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not so within {within:g}s")
        await asyncio.sleep(0.2)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _free_port() -> int:
    """A free port for the orders API, below the ephemeral range: the API must keep its port
    across restarts, and the proxies and metrics endpoints (port 0) could take an ephemeral one."""
    for port in random.SystemRandom().sample(range(20000, 32000), 50):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for the orders API in 20000-31999")
