"""A small asyncio TCP proxy that the chaos run puts between the shop and what it talks to (the
broker, PostgreSQL, the orders API), and that the tests put in front of a broker: `cut()` aborts
every connection passing through it (both sides see a reset), `slow(delay)` holds each chunk
`delay` seconds in both directions until `fast()`, `refuse()` / `accept()` turn new
connections away or let them through again, and `stall()` takes new connections and never
answers on them (a listener that accepts and then says nothing, as a broker shutting down or
still booting can) until they are cut, and `hang_up()` closes new connections at once, gracefully
(a FIN, not a reset: a broker's listener shutting down does it) until `accept()`. The one proxy
of the project; the tests import it through `tests/integration/tcp_proxy.py`."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards `127.0.0.1:<port>` to `target_host:target_port` until `close()`."""

    def __init__(self, target_host: str, target_port: int, *, name: str = "proxy") -> None:
        self.target = (target_host, target_port)
        self.name = name
        self.port = 0
        self.connections = 0
        """Connections let through to the target so far."""
        self.refused = 0
        """Connection attempts turned away (while refusing, or when the target refused them)."""
        self.stalled = 0
        """Connections taken and never answered (while stalling)."""
        self.hung_up = 0
        """Connections closed gracefully as soon as they were taken (while hanging up)."""
        self.delay = 0.0
        self._refusing = False
        self._stalling = False
        self._hanging_up = False
        self._silent: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def refuse(self) -> None:
        self._refusing = True

    def stall(self) -> None:
        """Take new connections and send nothing on them, nor forward them, until `cut()`."""
        self._stalling = True

    def hang_up(self) -> None:
        """Close new connections as soon as they are taken, with a FIN rather than a reset."""
        self._hanging_up = True

    def accept(self) -> None:
        """Let new connections through again (after `refuse()`, `stall()` or `hang_up()`)."""
        self._refusing = self._stalling = self._hanging_up = False

    def cut(self) -> int:
        """Abort every open connection, stalled ones too; returns how many were forwarding."""
        pairs = list(self._pairs)
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()
        for silent in self._silent:
            silent.transport.abort()
        self._silent.clear()
        return len(pairs)

    def slow(self, delay: float) -> None:
        """Hold every chunk `delay` seconds before passing it on (latency, not loss)."""
        self.delay = delay

    def fast(self) -> None:
        self.delay = 0.0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            self.refused += 1
            writer.transport.abort()
            return
        if self._hanging_up:
            self.hung_up += 1
            writer.close()
            return
        if self._stalling:
            self.stalled += 1
            self._silent.add(writer)  # held open, unanswered, until `cut()` or `close()`
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._pairs.discard(pair)
            for side in pair:
                side.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
