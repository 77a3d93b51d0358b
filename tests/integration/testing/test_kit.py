"""The test kit against itself: each fault demonstrably breaks a deliberately non-idempotent pair of
services and leaves an idempotent pair (SQLite databases: inbox and outbox) correct; the harness
records, waits and settles without sleeps."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from tidings.context import Context
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.testing import Faults, Harness

QUICK = RetryPolicy(max_attempts=20, base=0.01, max_delay=0.05)

metadata = MetaData()
effects = Table(
    "effects", metadata, Column("id", Integer, primary_key=True), Column("step", String(20)), Column("n", Integer)
)


class Ordered(Event, type="test.kit.ordered", version=1):
    n: int
    key: str

    def subject(self) -> str:
        return self.key


class Packed(Event, type="test.kit.packed", version=1):
    n: int
    key: str

    def subject(self) -> str:
        return self.key


class Pair:
    """`warehouse` turns each `Ordered` into a `Packed`; `courier` takes each `Packed`. Both count the
    effects they apply: in memory (not idempotent) or as rows in their own database (idempotent)."""

    def __init__(self, tmp_path: Path | None) -> None:
        self.applied: Counter[tuple[str, int]] = Counter()
        database = None if tmp_path is None else f"sqlite:///{tmp_path}/{{}}.db"
        self.warehouse = Service(
            "warehouse", database=database and database.format("warehouse"), tables=metadata, retry=QUICK
        )
        self.courier = Service(
            "courier", database=database and database.format("courier"), tables=metadata, retry=QUICK
        )
        self.warehouse.publishes(Packed)

        @self.warehouse.on(Ordered)
        async def pack(event: Ordered, ctx: Context) -> None:
            await self._apply(ctx, "packed", event.n)
            ctx.publish(Packed(n=event.n, key=event.key))

        @self.courier.on(Packed)
        async def ship(event: Packed, ctx: Context) -> None:
            await self._apply(ctx, "shipped", event.n)

    async def _apply(self, ctx: Context, step: str, n: int) -> None:
        if self.idempotent:
            await ctx.session.execute(effects.insert().values(step=step, n=n))
        else:
            self.applied[(step, n)] += 1

    @property
    def idempotent(self) -> bool:
        return self.warehouse.database_url is not None

    async def counts(self) -> Counter[tuple[str, int]]:
        if not self.idempotent:
            return self.applied
        found: Counter[tuple[str, int]] = Counter()
        for service in (self.warehouse, self.courier):
            async with service.store.session() as session:
                rows = await session.execute(select(effects.c.step, effects.c.n, func.count()).group_by("step", "n"))
                found.update({(step, n): count for step, n, count in rows})
        return found


FAULTS = {
    "duplicate": Faults(duplicate=True),
    "redeliver_after_success": Faults(redeliver_after_success=True),
    "republish": Faults(republish=True),
    "refuse_publishes": Faults(refuse_publishes=0.3),
    "slow_handler": Faults(slow_handler=True),
}
EVENTS = 12
EXACTLY_ONCE = Counter({(step, n): 1 for step in ("packed", "shipped") for n in range(EVENTS)})


async def run(pair: Pair, faults: Faults) -> Counter[tuple[str, int]]:
    async with Harness(pair.warehouse, pair.courier, faults=faults) as harness:
        await harness.send(*(Ordered(n=n, key=f"k{n % 3}") for n in range(EVENTS)))
        await harness.published(Packed, count=EVENTS, within=10)
        await harness.settled()
        return Counter(await pair.counts())


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_fault_breaks_a_handler_that_is_not_idempotent(fault: str) -> None:
    counts = await run(Pair(None), FAULTS[fault])
    assert counts != EXACTLY_ONCE
    assert all(counts[effect] >= 1 for effect in EXACTLY_ONCE), "a fault may repeat effects, never lose one"


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_fault_leaves_an_idempotent_service_exactly_once(fault: str, tmp_path: Path) -> None:
    assert await run(Pair(tmp_path), FAULTS[fault]) == EXACTLY_ONCE


async def test_reorder_breaks_an_order_across_keys_and_keeps_it_per_key() -> None:
    service = Service("sorter")
    seen: list[Ordered] = []

    @service.on(Ordered)
    async def take(event: Ordered, ctx: Context) -> None:
        seen.append(event)

    async with Harness(service, faults=Faults(reorder=True)) as harness:
        await harness.send(*(Ordered(n=n, key=f"k{n % 4}") for n in range(40)))
        await harness.until(lambda: len(seen) == 40, "40 handled")
    assert [event.n for event in seen] != list(range(40)), "across keys the order changed"
    for key in {event.key for event in seen}:
        mine = [event.n for event in seen if event.key == key]
        assert mine == sorted(mine), f"per-key order kept for {key}"


async def test_published_waits_for_a_subject_and_names_what_it_saw_when_it_runs_out() -> None:
    service = Service("echo")
    service.publishes(Packed)

    @service.on(Ordered)
    async def echo(event: Ordered, ctx: Context) -> None:
        ctx.publish(Packed(n=event.n, key=event.key))

    async with Harness(service) as harness:
        await harness.send(Ordered(n=1, key="a"), Ordered(n=2, key="b"))
        [packed] = await harness.published(Packed, subject="b")
        assert packed == Packed(n=2, key="b")
        with pytest.raises(AssertionError, match=r"not within 0.1s: 1 test.kit.packed; recorded types so far"):
            await harness.published(Packed, subject="c", within=0.1)
    assert service.broker_url != harness.broker, "the service's own broker is put back"


async def test_the_pytest_plugin_gives_a_harness_factory(tidings_harness: object) -> None:
    service = Service("plugged")
    taken: list[int] = []

    @service.on(Ordered)
    async def take(event: Ordered, ctx: Context) -> None:
        taken.append(event.n)

    harness = await tidings_harness(service, faults=Faults(duplicate=True))  # type: ignore[operator]
    await harness.send(Ordered(n=7, key="k"))
    await harness.until(lambda: taken == [7], "the handler ran")
    assert harness.events(Ordered) == [Ordered(n=7, key="k")]  # sent by the harness: no fault on the way in
