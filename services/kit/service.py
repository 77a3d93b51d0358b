"""`shop_service`: a plain Tidings `Service` set up the way every shop process needs it.

Everything goes through the service's public lifecycle (docs/decisions/0012-layers-and-runtime.md),
no subclass: the business tables are the service's `tables` (created after Tidings' migrations),
the seeders run as an `on_startup` hook, the HTTP servers are `component`s (started once the
service consumes, stopped first), the ready file is the last component (written once everything
else runs, removed first on stop), and the watch for an orphaned child is a supervised
`background` task. `tidings run module:service` and the supervisor both just call
`Service.run()`; on PostgreSQL the database must exist first (`run_main` creates it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import MetaData

from services.kit.db import Seeder, ensure_database
from services.settings import Settings, add_arguments
from tidings.legacy import LegacySource
from tidings.observe import setup
from tidings.runtime.hooks import Component
from tidings.runtime.supervisor import BackgroundTaskFailed, Restart
from tidings.service import Hook, Service
from tidings.transport import connect

log = logging.getLogger("services")

SUPERVISOR_PID = "SHOP_SUPERVISOR_PID"
REPLICA = "SHOP_REPLICA"
"""Which replica of its service a process is (1, 2...; `shop up --replicas`)."""


def instance_name(service: str, replica: int) -> str:
    """The name of one replica's log and ready file: the service's for replica 1, else `<service>-<n>`."""
    return service if replica == 1 else f"{service}-{replica}"


"""Set by the supervisor: a child whose parent goes away stops itself instead of lingering."""


class ShopComponent(Component, Protocol):
    """Something that runs beside the consumer in the service's loop (an HTTP server)."""

    def describe(self) -> dict[str, Any]:
        """What the ready file should tell about this component (the API address, say)."""
        ...


ComponentFactory = Callable[[Service, Settings], ShopComponent]
"""Makes a component of a started service, e.g. the class `ApiServer(service, settings)`."""


def shop_service(
    name: str,
    settings: Settings,
    *,
    tables: MetaData,
    seeders: Sequence[Seeder] = (),
    components: Sequence[ComponentFactory] = (),
    legacy: Sequence[LegacySource] = (),
) -> Service:
    """The shop service `name`: its own database (tables created, then seeded), its components,
    its `legacy` sources when the broker is RabbitMQ, and its ready file once it consumes."""
    service = Service(
        name,
        broker=settings.service_broker_url(name),
        database=settings.database_url(name),
        signing=settings.signing(name),
        tables=tables,
        concurrency=settings.concurrency,
        metrics_port=settings.metrics_port,
    )
    if seeders:
        service.on_startup(_seeding(tuple(seeders)))
    if legacy and service.broker_url.startswith(("amqp://", "amqps://")):
        service.connector = functools.partial(connect, legacy=legacy)
    started: dict[int, ShopComponent] = {}
    for index, factory in enumerate(components):
        service.component(_tracked(factory, settings, started, index))
    service.component(lambda service: ReadyFile(service, settings, started))
    supervisor = os.environ.get(SUPERVISOR_PID)
    if supervisor:
        service.background("orphan-watch", lambda: _watch_parent(int(supervisor)), on_crash=Restart())
    return service


def _seeding(seeders: Sequence[Seeder]) -> Hook:
    async def seed(service: Service) -> None:
        """Seed the reference data, idempotently, in one transaction."""
        async with service.store.engine.begin() as connection:
            for seeder in seeders:
                await seeder(connection)

    return seed


def _tracked(
    factory: ComponentFactory, settings: Settings, started: dict[int, ShopComponent], index: int
) -> Callable[[Service], Component]:
    def make(service: Service) -> Component:
        component = factory(service, settings)
        started[index] = component  # the ready file describes it
        return component

    return make


class ReadyFile:
    """`<run_dir>/<service>.json`: tells the supervisor this service consumes (its group is
    declared) and how to reach it. The last component, so it is written once the rest runs."""

    def __init__(self, service: Service, settings: Settings, components: Mapping[int, ShopComponent]) -> None:
        replica = int(os.environ.get(REPLICA) or 1)
        self.path: Path = settings.run_dir / f"{instance_name(service.name, replica)}.json"
        self.service = service
        self.components = components

    async def start(self) -> None:
        info: dict[str, Any] = {"pid": os.getpid(), "service": self.service.name}
        if self.service.metrics_port is not None:  # bound by now: the endpoint starts before components
            info["metrics"] = f"http://{self.service.metrics_host}:{self.service.metrics_port}"
        for _, component in sorted(self.components.items()):
            info.update(component.describe())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(info))
        temporary.replace(self.path)

    async def stop(self) -> None:
        self.path.unlink(missing_ok=True)


async def _watch_parent(supervisor: int) -> None:
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != supervisor:
            break
    log.warning("supervisor %d is gone; stopping", supervisor)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.Event().wait()  # the service is stopping now, which cancels this task


def event_loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop `Settings.event_loop` names; None is asyncio's own (ADR 0034)."""
    if event_loop == "asyncio":
        return None
    import uvloop  # the shop extra installs it wherever uvloop builds (not on Windows)

    return uvloop.new_event_loop


def run_main(build: Callable[[Settings], Service], argv: Sequence[str] | None = None) -> int:
    """Entry point of one service process: settings from env and options, run until SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(description="Run one service of the reference shop.")
    add_arguments(parser)
    parser.add_argument("--log-level", default=os.environ.get("SHOP_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    settings = Settings.from_env().with_args(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    service = build(settings)
    # logs (SHOP_LOG_FORMAT / TIDINGS_LOG_FORMAT) and spans (OTEL_* variables) as `tidings run` does
    setup.configure(service.name, log_format=os.environ.get("SHOP_LOG_FORMAT"), log_level=args.log_level)
    try:
        loop = asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop))
        with contextlib.suppress(KeyboardInterrupt), loop as runner:
            runner.run(run(service))
    except BackgroundTaskFailed as failure:  # the consumer died, say: exit non-zero, the supervisor restarts it
        log.error("%s", failure)
        return failure.exit_code
    finally:
        setup.shutdown()  # the spans still buffered
    return 0


async def run(service: Service) -> None:
    """Create the service's PostgreSQL database if missing (the `Store` needs it to exist before
    the startup hooks run), then run the service until SIGTERM."""
    if service.database_url is not None:
        await ensure_database(service.database_url)
    await service.run()
