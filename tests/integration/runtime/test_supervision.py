"""Supervision of a real service (embedded broker, SQLite database): a killed relay is restarted
and relays again, a dead consumer stops the service with a non-zero exit, and `/health` says so."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.store.helpers import receive
from tests.integration.store.shop import Job, JobDone, create_tables, worker
from tidings.envelope import Envelope
from tidings.runtime.supervisor import BackgroundTaskFailed
from tidings.transport.base import connect

ROOT = Path(__file__).resolve().parents[3]


async def until(condition: object, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def get_health(port: int) -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def task_named(name: str) -> asyncio.Task[object]:
    (task,) = [task for task in asyncio.all_tasks() if task.get_name() == name]
    return task


async def test_a_killed_relay_is_restarted_reported_and_relays_again(tmp_path: Path) -> None:
    broker, database = f"sqlite:///{tmp_path}/broker.db", f"sqlite:///{tmp_path}/worker.db"
    await create_tables(database)
    transport = await connect(broker)
    downstream = await transport.subscribe("audit", [JobDone.event_type])
    service = worker(broker, database)
    service.metrics_port = 0
    async with service:
        assert service.metrics_port
        task_named("worker-relay").cancel()
        await until(lambda: service.health()["tasks"]["relay"] == "restarting (1)")  # type: ignore[index]
        status, body = await get_health(service.metrics_port)
        assert (status, body["status"]) == (503, "degraded")
        await until(lambda: service.health()["status"] == "up")
        await transport.publish([Envelope.wrap(Job(n=1), source="test")])
        (done,) = await receive(downstream, 1)
        assert done.type == JobDone.event_type  # published by the restarted relay
        status, body = await get_health(service.metrics_port)
        assert (status, body["status"], body["tasks"]["relay"]) == (200, "up", "running")  # type: ignore[index]
    await transport.close()


async def test_a_dead_consumer_stops_the_service_and_health_says_failed(tmp_path: Path) -> None:
    broker, database = f"sqlite:///{tmp_path}/broker.db", f"sqlite:///{tmp_path}/worker.db"
    await create_tables(database)
    service = worker(broker, database)
    service.metrics_port = 0
    running = asyncio.create_task(service.run())
    await until(lambda: service.health()["status"] == "up")
    port = service.metrics_port
    assert port
    task_named("worker-consumer").cancel()
    failure = await asyncio.wait_for(service.supervisor.wait_failed(), 10)
    assert service.health()["status"] == "failed"
    assert service.health()["tasks"]["consumer"] == "failed: killed: its task was cancelled"  # type: ignore[index]
    with pytest.raises(BackgroundTaskFailed) as raised:
        await asyncio.wait_for(running, 30)
    assert raised.value is failure
    assert raised.value.exit_code == 70
    assert service.health()["status"] == "failed"  # and stays so: why it stopped


def test_tidings_run_exits_with_the_code_of_the_task_that_died() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "run", "tests.integration.runtime.doomed_app:service"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 71, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "tidings: service 'doomed': background task 'sweep' died (RuntimeError: the sweep hit a bug)"
