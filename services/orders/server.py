"""Serve the orders API with uvicorn inside the service's own event loop.

Uvicorn's `serve()` normally installs its own SIGINT/SIGTERM handlers; here the service owns the
signals (SIGTERM drains the consumer too), so they are left alone and the server is told to
exit from `stop()`. The socket is bound here, before uvicorn starts, so a port already in use
fails the service's start with an `OSError` (uvicorn would call `sys.exit` in the loop), and
port 0 works: the bound port is reported in the ready file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from services.kit.service import ShopService
from services.orders.api import create_app

log = logging.getLogger("services.orders.api")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """A `Component` of the orders service: the HTTP API on `settings.api_host:api_port`."""

    def __init__(self, service: ShopService) -> None:
        self.service = service
        self.host = service.settings.api_host
        self.port = service.settings.api_port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.service),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            backlog=1024,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="orders-api")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the orders API stopped while starting")
            await asyncio.sleep(0.01)
        log.info("orders API on %s (docs at /docs)", self.url)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = self._task = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def describe(self) -> dict[str, Any]:
        return {"api": self.url}
