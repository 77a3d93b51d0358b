"""The recorder's retention against a real SQLite database: a soak of a few thousand recorded
events keeps the dashboard's database under its configured size, and old events go by age."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import func, select, update

from tests.integration import dashboard_events
from tests.integration.dashboard_events import NoteTaken, OrderPlaced
from tidings.dashboard import Recorder
from tidings.dashboard.config import DashboardConfig, Retention
from tidings.dashboard.recorder import events
from tidings.dashboard.retention import prune, used_bytes
from tidings.dashboard.wiring import Dashboard
from tidings.envelope import Envelope
from tidings.ids import uuid7
from tidings.transport import connect

LIMIT = 1024 * 1024
BURST = 10
"""Events per 50 ms: about 260 KB/s, an eighth of the limit per 0.5 s pass, inside the room above
the high-water mark that the retention contract keeps for what arrives between two passes (at 50
per 50 ms, more than half the limit arrived between passes and a loaded machine overshot)."""
"""Small beside what the soak records (about 2.5 MB), large beside an empty database (about 250 KB)."""
EVENTS = 2000


def on_disk(path: Path) -> int:
    """The database file and its WAL, as the disk holds them."""
    sizes = [part.stat().st_size for part in (path, path.with_name(path.name + "-wal")) if part.exists()]
    PEAKS.append(tuple(sizes))
    return sum(sizes)


PEAKS: list[tuple[int, ...]] = []


async def test_a_soak_keeps_the_dashboard_database_under_its_size_limit(tmp_path: Path) -> None:
    database = tmp_path / "dashboard.db"
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    recorder = Recorder(broker=broker, database=f"sqlite:///{database}", events=dashboard_events)
    Dashboard(recorder, config=DashboardConfig(retention=Retention(max_bytes=LIMIT, interval=0.5)))
    transport = await connect(broker)
    largest = 0
    try:
        async with recorder:
            padding = "x" * 1000  # about 1.3 KB per recorded event with its ids and indexes
            for start in range(0, EVENTS, BURST):
                batch = [
                    Envelope.wrap(NoteTaken(key=f"o-{n}", text=padding), source="soak").with_changes(
                        correlationid=uuid7()
                    )
                    for n in range(start, start + BURST)
                ]
                await transport.publish(batch)
                await asyncio.sleep(0.05)  # a steady rate, not one burst: pruning runs beside it
                largest = max(largest, on_disk(database))
            deadline = time.monotonic() + 240  # generous: a loaded CI machine records slowly
            while recorder.stats["handled"] < EVENTS:
                assert time.monotonic() < deadline, f"recorded {recorder.stats} of {EVENTS}"
                largest = max(largest, on_disk(database))
                await asyncio.sleep(0.05)
            await prune(recorder.store, Retention(max_bytes=LIMIT))
            largest = max(largest, on_disk(database))
            async with recorder.store.session() as session, session.begin():
                kept = await session.scalar(select(func.count()).select_from(events))
                newest = await session.scalar(select(func.max(events.c.subject)))
            used = await used_bytes(recorder.store)
    finally:
        await transport.close()
    print(f"soak: {EVENTS} events, {kept} kept, largest on disk {largest} bytes, used {used}, limit {LIMIT}")
    file_peak = max(sizes[0] for sizes in PEAKS)
    wal_peak = max((sizes[1] for sizes in PEAKS if len(sizes) > 1), default=0)
    print(f"soak: database file at most {file_peak} bytes, WAL at most {wal_peak} bytes")
    assert file_peak <= LIMIT, f"the database file reached {file_peak} bytes, over its {LIMIT}"
    assert wal_peak <= LIMIT // 2, f"the WAL reached {wal_peak} bytes: its checkpoints do not keep up"
    assert 0 < kept < EVENTS, "pruned by size, newest kept"
    assert newest is not None


async def test_events_older_than_the_age_limit_are_pruned(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    recorder = Recorder(broker=broker, database=f"sqlite:///{tmp_path / 'dashboard.db'}", events=dashboard_events)
    transport = await connect(broker)
    try:
        async with recorder:
            await transport.publish([Envelope.wrap(OrderPlaced(order_id=f"o-{n}"), source="t") for n in range(3)])
            deadline = time.monotonic() + 15
            while recorder.stats["handled"] < 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            async with recorder.store.session() as session, session.begin():
                old = select(events.c.seq).order_by(events.c.seq).limit(2).scalar_subquery()
                await session.execute(
                    update(events).where(events.c.seq.in_(old)).values(recorded_at=time.time() - 7200)
                )
            pruned = await prune(recorder.store, Retention(max_age=3600))
            async with recorder.store.session() as session, session.begin():
                left = [row.subject for row in await session.execute(select(events.c.subject))]
    finally:
        await transport.close()
    assert (pruned.by_age, pruned.by_size) == (2, 0)
    assert left == ["o-2"]
