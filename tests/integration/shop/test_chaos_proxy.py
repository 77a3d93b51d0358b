"""The chaos run's TCP proxy: it forwards both ways, `cut()` resets the connections passing
through it (new ones work again), `slow()` delays every chunk until `fast()`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from services.chaos.proxy import TcpProxy


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def round_trip(port: int, payload: bytes = b"ping") -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    writer.write(payload)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readexactly(len(payload)), timeout=5)
    writer.close()
    return answer, time.monotonic() - began


async def test_forwards_cuts_and_slows(echo: int) -> None:
    proxy = await TcpProxy("127.0.0.1", echo).start()
    try:
        assert (await round_trip(proxy.port))[0] == b"ping"

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hold")
        assert await asyncio.wait_for(reader.readexactly(4), timeout=5) == b"hold"
        assert proxy.cut() == 1
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):  # reset, or at least closed
            await asyncio.wait_for(reader.readexactly(4), timeout=5)
        writer.close()

        proxy.slow(0.3)
        answer, took = await round_trip(proxy.port)
        assert answer == b"ping"
        assert took >= 0.6  # held once on the way there and once on the way back
        proxy.fast()
        assert (await round_trip(proxy.port))[1] < 0.3
        assert proxy.connections == 4
    finally:
        await proxy.close()
