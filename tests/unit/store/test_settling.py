"""`Deletion`: the settles a SQLite relay runs beside its next cycles. Pure asyncio, no database:
each settle here is a function the test releases by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.waiting import eventually
from tidings.store.settling import Deletion


class Gate:
    """A settle that waits to be released, then commits (or fails) and records that it ran."""

    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail
        self.release = asyncio.Event()
        self.started = False

    async def __call__(self, committed: Callable[[], None]) -> None:
        self.started = True
        await self.release.wait()
        if self.fail:
            self.log.append(f"{self.name} failed")
            raise ConnectionError(f"{self.name}: database away (simulated)")
        committed()
        self.log.append(f"{self.name} committed")


async def test_settles_run_one_after_the_other_and_a_cycle_does_not_wait_for_the_one_before() -> None:
    log: list[str] = []
    deletion = Deletion()
    first, second = Gate("first", log), Gate("second", log)
    async with asyncio.timeout(5):
        await deletion.start([1, 2], first, name="first")
        await deletion.start([3], second, name="second")  # returns at once: the first still runs
    await eventually(lambda: first.started, "the first settle to start")
    assert not second.started  # it waits for the first
    assert deletion.deleting == {1, 2, 3}
    second.release.set()
    first.release.set()
    await deletion.drain()
    assert log == ["first committed", "second committed"]
    assert deletion.deleting == frozenset()
    assert deletion.finished == 2


async def test_at_most_two_are_queued_a_third_waits_for_the_oldest() -> None:
    log: list[str] = []
    deletion = Deletion()
    gates = [Gate(name, log) for name in ("a", "b", "c")]
    await deletion.start([1], gates[0], name="a")
    await deletion.start([2], gates[1], name="b")
    third = asyncio.create_task(deletion.start([3], gates[2], name="c"))
    await eventually(lambda: gates[0].started, "the oldest settle to start")
    assert not third.done()
    gates[0].release.set()
    async with asyncio.timeout(5):
        await third
    assert log == ["a committed"]
    assert deletion.deleting == {2, 3}
    for gate in gates:
        gate.release.set()
    await deletion.drain()
    assert log == ["a committed", "b committed", "c committed"]


async def test_a_committed_settle_stops_skipping_its_rows_before_it_returns() -> None:
    deletion = Deletion()
    seen: list[frozenset[int]] = []

    async def settle(committed: Callable[[], None]) -> None:
        committed()
        seen.append(deletion.deleting)  # still inside the settle: returning its connection
        await asyncio.sleep(0)  # sleep-ok: an await point after the commit, as returning a connection is

    await deletion.start([7, 8], settle, name="one")
    await deletion.drain()
    assert seen == [frozenset()]
    assert deletion.finished == 1


async def test_a_failed_settle_frees_its_rows_the_next_still_runs_and_drain_raises() -> None:
    log: list[str] = []
    deletion = Deletion()
    failing, next_one = Gate("failing", log, fail=True), Gate("next", log)
    await deletion.start([1], failing, name="failing")
    await deletion.start([2], next_one, name="next")
    failing.release.set()
    await eventually(lambda: deletion.deleting == {2}, "the failed settle's rows to be read again")
    next_one.release.set()
    with pytest.raises(ConnectionError, match="failing"):
        await deletion.drain()
    assert log == ["failing failed", "next committed"]
    assert deletion.finished == 2
    await deletion.drain()  # nothing left: returns
