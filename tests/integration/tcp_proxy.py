"""The TCP proxy tests put in front of a broker to cut, slow or refuse its connections: the
project's one proxy, `services.chaos.proxy.TcpProxy` (the chaos run uses the same), and
`ProxyThread`, the same proxy on a thread and loop of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from services.chaos.proxy import TcpProxy

__all__ = ["ProxyThread", "TcpProxy"]
T = TypeVar("T")


class ProxyThread:
    """A `TcpProxy` on its own thread and event loop, as a proxy in another process (the chaos
    run's) is: what it does to a connection happens whatever the client's loop is busy with, so
    a client can find a connection closed before its own loop has looked at it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self.proxy = asyncio.run_coroutine_threadsafe(TcpProxy(target_host, target_port).start(), self._loop).result()
        self.port = self.proxy.port

    def call(self, do: Callable[[TcpProxy], T]) -> T:
        """`do(proxy)` on the proxy's loop; returns its result."""

        async def on_its_loop() -> T:
            return do(self.proxy)

        return asyncio.run_coroutine_threadsafe(on_its_loop(), self._loop).result(timeout=10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
