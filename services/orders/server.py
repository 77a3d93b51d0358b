"""Serve the orders API with uvicorn inside the service's own event loop.

Uvicorn's `serve()` normally installs its own SIGINT/SIGTERM handlers; here the service owns the
signals (SIGTERM drains the consumer too), so they are left alone and the server is told to
exit from `stop()`. The socket is bound before uvicorn starts, so a port already in use fails
the service's start with an `OSError` (uvicorn would call `sys.exit` in the loop), and port 0
works: the bound port is reported in the ready file. `services.kit.http` does both. The GET
endpoints read through a store of their own on SQLite (`services.orders.reads`), opened before
the server starts and closed after it stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from services.kit.http import HttpServer
from services.orders.api import create_app
from services.orders.reads import Reads
from services.settings import Settings
from tidings.service import Service

log = logging.getLogger("services.orders.api")


class ApiServer(HttpServer):
    """A `Component` of the orders service: the HTTP API on `settings.api_host:api_port`."""

    def __init__(self, service: Service, settings: Settings) -> None:
        self.reads = Reads(service)
        super().__init__(
            create_app(service, settings, self.reads),
            settings.api_host,
            settings.api_port,
            name="orders-api",
            backlog=1024,
        )
        self.service = service

    async def start(self) -> None:
        await self.reads.open()
        try:
            await super().start()
        except BaseException:
            await self.reads.close()
            raise
        log.info("orders API on %s (docs at /docs)", self.url)

    async def stop(self) -> None:
        await super().stop()
        await self.reads.close()

    def describe(self) -> dict[str, Any]:
        return {"api": self.url}
