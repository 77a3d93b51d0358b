"""A service for the SIGTERM test: its handler is slow and leaves marks in a directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tidings.context import Context
from tidings.events import Event
from tidings.service import Service


class SlowJob(Event, type="test.slow-job", version=1):
    n: int


MARKS = Path(os.environ.get("SIGTERM_APP_MARKS", "."))
service = Service("slowpoke", broker=os.environ.get("SIGTERM_APP_BROKER", "memory://unused"))


@service.on(SlowJob)
async def work(event: SlowJob, ctx: Context) -> None:
    (MARKS / f"started-{event.n}").touch()
    await asyncio.sleep(1.0)  # sleep-ok: a slow handler is the scenario (SIGTERM arrives while it runs)
    (MARKS / f"finished-{event.n}").touch()
