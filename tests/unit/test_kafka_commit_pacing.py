"""The Kafka committer's pacing (pure logic, no broker): a commit that many asked for makes the
next one wait `PACE` after it started, so a request covers what settles meanwhile; a commit only
one or two asked for (a lone key, one caller acking one delivery at a time) does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tidings.transport.kafka import commits
from tidings.transport.kafka.commits import Committer


class NoAssignment:
    """A consumer that owns no partition: every commit is empty, and resolves its waiters."""

    def assignment(self) -> set[Any]:
        return set()


@pytest.fixture
async def committer() -> AsyncIterator[Committer]:
    committer = Committer(NoAssignment(), {}, "g")
    running = asyncio.create_task(committer.run())
    yield committer
    running.cancel()
    await asyncio.wait({running})


async def test_a_busy_commit_makes_the_next_wait_its_pace(
    committer: Committer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commits, "PACE", 0.3)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    for _ in range(commits.BUSY):
        committer.want()
    await committer.waiter()  # the busy commit: it started after `asked`
    await committer.waiter()  # the next one starts no sooner than PACE after it
    assert loop.time() - asked >= 0.3


async def test_lone_asks_are_committed_without_waiting(committer: Committer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits, "PACE", 30.0)
    async with asyncio.timeout(10):  # far below one PACE: none of these commits waited for it
        for _ in range(5):
            committer.ticket()
            await committer.waiter()
