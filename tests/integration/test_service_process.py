"""`tidings run` as a real process: SIGTERM drains the handler in flight and exits 0; metrics are served."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.integration.sigterm_app import SlowJob
from tidings.envelope import Envelope
from tidings.transport import connect


async def test_sigterm_drains_in_flight_work_and_exits_zero(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    env = {**os.environ, "SIGTERM_APP_BROKER": broker, "SIGTERM_APP_MARKS": str(tmp_path)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidings", "run", "tests.integration.sigterm_app:service", env=env
    )
    transport = await connect(broker)
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while "slowpoke" not in await transport.backlog():
            assert asyncio.get_running_loop().time() < deadline, "the service never subscribed"
            await asyncio.sleep(0.05)
        await transport.publish([Envelope.wrap(SlowJob(n=1), source="test")])
        while not (tmp_path / "started-1").exists():
            assert asyncio.get_running_loop().time() < deadline, "the handler never started"
            await asyncio.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(child.wait(), timeout=15)
        assert code == 0
        assert (tmp_path / "finished-1").exists(), "SIGTERM cut the handler short"
        assert (await transport.backlog())["slowpoke"] == 0, "the drained delivery was not acked"
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await transport.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_run_with_metrics_port_serves_metrics_until_stopped(tmp_path: Path) -> None:
    broker, port = f"sqlite:///{tmp_path / 'broker.db'}", free_port()
    env = {**os.environ, "SIGTERM_APP_BROKER": broker, "SIGTERM_APP_MARKS": str(tmp_path)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidings",
        "run",
        "tests.integration.sigterm_app:service",
        "--metrics-port",
        str(port),
        env=env,
    )
    transport = await connect(broker)
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while "slowpoke" not in await transport.backlog():
            assert asyncio.get_running_loop().time() < deadline, "the service never subscribed"
            await asyncio.sleep(0.05)
        await transport.publish([Envelope.wrap(SlowJob(n=1), source="test")])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    response = await client.get("/metrics")
                    if 'tidings_messages_handled_total{service="slowpoke"' in response.text:
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                assert asyncio.get_running_loop().time() < deadline, "no handled event in /metrics"
                await asyncio.sleep(0.1)
        assert response.status_code == 200
        assert 'outcome="handled"} 1' in response.text
        assert 'tidings_consumer_backlog{service="slowpoke",group="slowpoke"} 0' in response.text
        child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), timeout=15) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await transport.close()
