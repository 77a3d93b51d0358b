"""A service for the SIGTERM-drain test over every broker: with a database, so its follow-up event
goes through the outbox and the relay; its handler is slow and leaves marks in a directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tidings.context import Context
from tidings.events import Event
from tidings.service import Service


class LongJob(Event, type="test.reliable.long-job", version=1):
    n: int


class LongJobDone(Event, type="test.reliable.long-job-done", version=1):
    n: int


MARKS = Path(os.environ.get("RELIABLE_APP_MARKS", "."))
service = Service(
    "drainer",
    broker=os.environ.get("RELIABLE_APP_BROKER", "memory://unused"),
    database=os.environ.get("RELIABLE_APP_DATABASE", "sqlite+aiosqlite:///:memory:"),
)


@service.on(LongJob)
async def work(event: LongJob, ctx: Context) -> None:
    (MARKS / f"started-{event.n}").touch()
    await asyncio.sleep(1.0)  # sleep-ok: a slow handler is the scenario (SIGTERM arrives while it runs)
    ctx.publish(LongJobDone(n=event.n))  # the outbox, committed with the inbox claim; the relay sends it
    (MARKS / f"finished-{event.n}").touch()
