"""`tidings run` as a real process: SIGTERM drains the handler in flight and exits 0; metrics are served."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.integration.processes import free_port, terminate, tidings_command, wait_subscribed
from tests.integration.sigterm_app import SlowJob
from tidings.envelope import Envelope
from tidings.transport import connect

APP = "tests.integration.sigterm_app:service"

BACKLOG_SETTLED = 'tidings_consumer_backlog{service="slowpoke",group="slowpoke"} 0'


def app_env(tmp_path: Path) -> dict[str, str]:
    return {"SIGTERM_APP_BROKER": f"sqlite:///{tmp_path / 'broker.db'}", "SIGTERM_APP_MARKS": str(tmp_path)}


async def test_sigterm_drains_in_flight_work_and_exits_zero(tmp_path: Path) -> None:
    env = app_env(tmp_path)
    transport = await connect(env["SIGTERM_APP_BROKER"])
    try:
        async with tidings_command("run", APP, env=env) as child:
            await wait_subscribed(transport, "slowpoke")
            await transport.publish([Envelope.wrap(SlowJob(n=1), source="test")])
            deadline = asyncio.get_running_loop().time() + 20
            while not (tmp_path / "started-1").exists():
                assert asyncio.get_running_loop().time() < deadline, "the handler never started"
                await asyncio.sleep(0.02)
            assert await terminate(child) == 0
        assert (tmp_path / "finished-1").exists(), "SIGTERM cut the handler short"
        assert (await transport.backlog())["slowpoke"] == 0, "the drained delivery was not acked"
    finally:
        await transport.close()


async def test_run_with_metrics_port_serves_metrics_until_stopped(tmp_path: Path) -> None:
    env, port = app_env(tmp_path), free_port()
    transport = await connect(env["SIGTERM_APP_BROKER"])
    try:
        async with tidings_command("run", APP, "--metrics-port", str(port), env=env) as child:
            await wait_subscribed(transport, "slowpoke")
            await transport.publish([Envelope.wrap(SlowJob(n=1), source="test")])
            deadline = asyncio.get_running_loop().time() + 20
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                while True:
                    try:
                        response = await client.get("/metrics")
                        # every series exists from the start, at 0; the sampled backlog reaches 0 a sample later
                        if 'outcome="handled"} 1' in response.text and BACKLOG_SETTLED in response.text:
                            break
                    except httpx.TransportError:
                        pass  # not listening yet
                    assert asyncio.get_running_loop().time() < deadline, "handled 1, backlog 0 not in /metrics"
                    await asyncio.sleep(0.1)
            assert response.status_code == 200
            assert 'outcome="handled"} 1' in response.text
            assert BACKLOG_SETTLED in response.text
            assert await terminate(child) == 0
    finally:
        await transport.close()
