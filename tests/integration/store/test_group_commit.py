"""Group commit (ADR 0017): deliveries handled at the same time share one transaction, and a
failure in one of them never costs its neighbours their effects nor applies them twice.

Each handler records the connection object it was given: handlers of one batch share one, which
is how the tests see that batching happened. Jobs have distinct keys so that the broker hands them
out together (one key's events are handed out one at a time)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import func, select

from tests.integration.store.helpers import eventually, receive
from tests.integration.store.shop import Boom, Job, JobDone, create_tables, effect_counts, effects
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.runtime.group_commit import GroupCommit, Rerun, claim
from tidings.service import Service
from tidings.store import Store
from tidings.store.tables import inbox as inbox_table
from tidings.transport.base import connect

JOBS = 24
POISONED = 5


Runs = defaultdict[tuple[int, int], list[object]]


def recording_worker(broker: str, database: str, sessions: Runs) -> Service:
    """`shop.worker`'s handler, noting the connection of each run per (job, attempt) (kept alive,
    so that no two are one object). Even jobs write through the ORM session, odd ones through
    the Core connection: a batch's rollback and commit must cover both."""
    service = Service("worker", broker=broker, database=database, retry=RetryPolicy(max_attempts=2, base=0.01))

    @service.on(Job)
    async def handle(job: Job, ctx: Context) -> None:
        sessions[(job.n, ctx.attempt)].append(ctx.connection)
        write = ctx.connection if job.n % 2 else ctx.session
        await write.execute(effects.insert().values(service="worker", job=job.n))
        ctx.publish(JobDone(n=job.n, key=job.key))
        if job.fail:
            raise Boom(f"job {job.n} fails after writing")

    return service


async def _claims(database: str) -> int:
    store = await Store.open(database, migrate=False)
    try:
        async with store.session() as session, session.begin():
            return int((await session.execute(select(func.count()).select_from(inbox_table))).scalar_one())
    finally:
        await store.close()


async def test_a_poisoned_event_in_a_batch_fails_alone_and_its_neighbours_commit_exactly_once(
    database_url: str, any_broker_url: str
) -> None:
    await create_tables(database_url)
    transport = await connect(any_broker_url)
    downstream = await transport.subscribe("audit", [JobDone.event_type])
    await (await transport.subscribe("worker", [Job.event_type])).close()
    jobs = [Envelope.wrap(Job(n=n, key=f"k{n}", fail=n == POISONED), source="test") for n in range(JOBS)]
    await transport.publish(jobs)  # all waiting before the service starts: they come in batches
    sessions: Runs = defaultdict(list)
    service = recording_worker(any_broker_url, database_url, sessions)
    async with service:
        await eventually(
            lambda: _true(service.stats["handled"] == JOBS - 1 and service.stats["dead_lettered"] == 1),
            within=60,
            what="every job handled or dead-lettered",
        )
        received = await receive(downstream, JOBS - 1, quiet=0.3)

    sharing: dict[int, set[int]] = defaultdict(set)
    for (job, _attempt), runs in sessions.items():
        for session in runs:
            sharing[id(session)].add(job)
    first, *reruns = sessions[(POISONED, 1)]
    neighbours = sharing[id(first)] - {POISONED}
    assert neighbours, "the poisoned job's first attempt was not in a batch"
    assert reruns == []  # its own failure is one attempt for the retry policy, not rerun at once
    for job in neighbours:  # rolled back with it, then run again alone: two runs, one effect
        assert len(sessions[(job, 1)]) == 2
        assert len(sharing[id(sessions[(job, 1)][-1])]) == 1
    assert [len(sharing[id(session)]) for session in sessions[(POISONED, 2)]] == [1]  # the retry: alone
    assert service.stats["retried"] == 1
    assert await effect_counts(database_url, "worker") == {n: 1 for n in range(JOBS) if n != POISONED}
    assert await _claims(database_url) == JOBS - 1
    assert sorted(JobDone.model_validate_json(e.data).n for e in received) == [n for n in range(JOBS) if n != POISONED]
    letters = await transport.dead_letters("worker")
    assert [letter.event_id for letter in letters] == [jobs[POISONED].id]
    await downstream.close()
    await transport.close()


class Unkeyed(Event, type="test.store.unkeyed", version=1):
    """No partition key: the broker hands these out together, redeliveries included."""

    n: int


async def test_an_event_delivered_twice_into_one_batch_is_handled_once(database_url: str, any_broker_url: str) -> None:
    await create_tables(database_url)
    transport = await connect(any_broker_url)
    await (await transport.subscribe("worker", [Unkeyed.event_type])).close()
    events = [Envelope.wrap(Unkeyed(n=n), source="test") for n in range(12)]
    await transport.publish([*events, events[3], events[7]])  # two of them twice, side by side
    sessions: Runs = defaultdict(list)
    service = Service("worker", broker=any_broker_url, database=database_url)

    @service.on(Unkeyed)
    async def handle(event: Unkeyed, ctx: Context) -> None:
        sessions[(event.n, ctx.attempt)].append(ctx.session)
        await ctx.session.execute(effects.insert().values(service="worker", job=event.n))

    async with service:
        await eventually(
            lambda: _true(service.stats["handled"] + service.stats["duplicates"] == 14),
            within=60,
            what="all fourteen deliveries settled",
        )
    assert (service.stats["handled"], service.stats["duplicates"]) == (12, 2)
    assert await effect_counts(database_url, "worker") == dict.fromkeys(range(12), 1)
    assert await _claims(database_url) == 12
    assert len({id(runs[0]) for runs in sessions.values()}) < 12, "no two events shared a transaction"
    await transport.close()


async def _true(value: bool) -> bool:
    return value


async def test_a_member_cancelled_before_its_turn_dooms_its_batch_so_no_claim_commits_without_its_handler(
    store: Store,
) -> None:
    committed: list[list[Envelope]] = []
    group = GroupCommit(store, committed.append)
    envelopes = [Envelope.wrap(Job(n=n, key=f"k{n}"), source="test") for n in range(3)]
    first_in, release = asyncio.Event(), asyncio.Event()

    async def member(envelope: Envelope, *, hold: bool = False) -> str:
        try:
            async with group.member(Context("worker", incoming=envelope)) as ctx:
                assert await claim(ctx.session, "worker", envelope.source, envelope.id)  # one statement for all
                if hold:
                    first_in.set()
                    await release.wait()
        except Rerun:
            return "rerun"
        return "committed"

    holder = asyncio.create_task(member(envelopes[0], hold=True))
    await first_in.wait()
    cancelled = asyncio.create_task(member(envelopes[1]))
    last = asyncio.create_task(member(envelopes[2]))
    await asyncio.sleep(0)  # both queued for their turn
    cancelled.cancel()
    release.set()
    assert await holder == "rerun"
    assert await last == "rerun"
    assert cancelled.cancelled()
    assert committed == []
    assert await _claims_in(store) == 0  # the claim made for the cancelled member rolled back with the batch


async def _claims_in(store: Store) -> int:
    async with store.session() as session, session.begin():
        return int((await session.execute(select(func.count()).select_from(inbox_table))).scalar_one())
