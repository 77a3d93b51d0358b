"""A tiny service for the store tests: `Job` events make an `effects` row and a `JobDone` event.

Shared by the in-process tests and `crash_child.py`, which runs the same service as a process.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from tidings.context import Context
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.store import Store

metadata = MetaData()
effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(100), nullable=False),
    Column("job", Integer, nullable=False),
)


class Job(Event, type="test.store.job", version=1):
    n: int
    key: str = "k"
    fail: bool = False

    def subject(self) -> str:
        return self.key


class JobDone(Event, type="test.store.job-done", version=1):
    n: int
    key: str = "k"

    def subject(self) -> str:
        return self.key


class Boom(Exception):
    """A handler failure after it wrote rows."""


def worker(
    broker: str, database: str, *, name: str = "worker", concurrency: int = 16, retry: RetryPolicy | None = None
) -> Service:
    """Handles `Job`: one `effects` row and one `JobDone`, or `Boom` after writing when `fail`."""
    service = Service(name, broker=broker, database=database, concurrency=concurrency, retry=retry)

    @service.on(Job)
    async def handle(job: Job, ctx: Context) -> None:
        await ctx.session.execute(effects.insert().values(service=name, job=job.n))
        ctx.publish(JobDone(n=job.n, key=job.key))
        if job.fail:
            raise Boom(f"job {job.n} fails after writing")

    return service


def auditor(broker: str, database: str, *, name: str = "audit") -> Service:
    """Handles `JobDone` with one `effects` row each: its row count shows duplicates it let through."""
    service = Service(name, broker=broker, database=database)

    @service.on(JobDone)
    async def handle(done: JobDone, ctx: Context) -> None:
        await ctx.session.execute(effects.insert().values(service=name, job=done.n))

    return service


async def create_tables(database: str) -> None:
    store = await Store.open(database, metadata=metadata)
    await store.close()


async def effect_counts(database: str, service: str) -> dict[int, int]:
    """How many `effects` rows each job has for `service`."""
    store = await Store.open(database, migrate=False)
    try:
        async with store.session() as session, session.begin():
            rows = await session.execute(
                select(effects.c.job, func.count()).where(effects.c.service == service).group_by(effects.c.job)
            )
            return {int(job): int(count) for job, count in rows}
    finally:
        await store.close()
