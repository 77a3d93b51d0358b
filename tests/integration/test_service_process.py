"""`tidings run` as a real process: SIGTERM drains the handler in flight and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

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
