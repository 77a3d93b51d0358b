"""`ShopService`: a Tidings `Service` that prepares its own database and runs side components.

A shop service must create its database and business tables (and seed them) before its first
handler runs, and the orders service also serves HTTP and sweeps deadlines in the same event
loop. Doing this in `start`/`stop` keeps `tidings run module:service` and the supervisor
equivalent: both just call `Service.run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import MetaData

from services.kit.db import Seeder, prepare_database
from services.settings import Settings, add_arguments
from tidings.service import Service

log = logging.getLogger("services")

SUPERVISOR_PID = "SHOP_SUPERVISOR_PID"
"""Set by the supervisor: a child whose parent goes away stops itself instead of lingering."""


class Component(Protocol):
    """Something that runs beside the consumer in the service's loop (an HTTP server, a sweep)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What the ready file should tell about this component (the API address, say)."""
        ...


class ShopService(Service):
    """A shop service: its own database (created, migrated and seeded at start) and components."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        metadata: MetaData,
        seeders: Sequence[Seeder] = (),
        components: Sequence[Callable[[ShopService], Component]] = (),
    ) -> None:
        super().__init__(
            name,
            broker=settings.broker_url(),
            database=settings.database_url(name),
            concurrency=settings.concurrency,
        )
        self.settings = settings
        self.metadata = metadata
        self._seeders = tuple(seeders)
        self._component_factories = tuple(components)
        self._components: list[Component] = []
        self._orphan_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assert self.database_url is not None
        await prepare_database(self.database_url, self.metadata, self._seeders)
        await super().start()
        try:
            for factory in self._component_factories:
                component = factory(self)
                await component.start()
                self._components.append(component)
        except BaseException:  # the API port is taken, say: close what started, then fail
            await self.stop()
            raise
        self._write_ready_file()
        if os.environ.get(SUPERVISOR_PID):
            self._orphan_watch = asyncio.create_task(_watch_parent(int(os.environ[SUPERVISOR_PID])))

    async def stop(self) -> None:
        self._ready_file().unlink(missing_ok=True)
        if self._orphan_watch is not None:
            self._orphan_watch.cancel()
            self._orphan_watch = None
        while self._components:
            await self._components.pop().stop()
        await super().stop()

    def _ready_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.json"

    def _write_ready_file(self) -> None:
        """Tell the supervisor this service consumes (its group is declared) and how to reach it."""
        info: dict[str, Any] = {"pid": os.getpid(), "service": self.name}
        for component in self._components:
            info.update(component.describe())
        path = self._ready_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(info))
        temporary.replace(path)


async def _watch_parent(supervisor: int) -> None:
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != supervisor:
            break
    log.warning("supervisor %d is gone; stopping", supervisor)
    os.kill(os.getpid(), signal.SIGTERM)


def run_main(build: Callable[[Settings], ShopService], argv: Sequence[str] | None = None) -> int:
    """Entry point of one service process: settings from env and options, run until SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(description="Run one service of the reference shop.")
    add_arguments(parser)
    parser.add_argument("--log-level", default=os.environ.get("SHOP_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings.from_env().with_args(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    service = build(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(service.run())
    return 0
