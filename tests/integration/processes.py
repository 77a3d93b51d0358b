"""Helpers for tests that run `python -m tidings ...` as a child process, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping

from tidings.transport import Transport


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def tidings_command(
    *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m tidings <args>`; killed on exit if the test did not stop it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidings", *args, env={**os.environ, **(env or {})}
    )
    try:
        yield child
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def terminate(child: asyncio.subprocess.Process, *, within: float = 15) -> int:
    """SIGTERM, then the exit status (0 for a clean drain)."""
    child.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(child.wait(), timeout=within)


async def wait_subscribed(transport: Transport, group: str, *, within: float = 20) -> None:
    """Until the broker knows `group` (its consumer declared it), so nothing published is missed."""
    deadline = asyncio.get_running_loop().time() + within
    while group not in await transport.backlog():
        assert asyncio.get_running_loop().time() < deadline, f"group {group!r} never subscribed"
        await asyncio.sleep(0.05)
