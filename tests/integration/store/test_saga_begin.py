"""A saga begun inside a unit of work (an HTTP request's transaction) exists exactly when that
transaction commits: its replies find it without a round trip through the broker, and a rolled-back
request leaves no instance."""

from __future__ import annotations

import asyncio

import pytest

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event
from tidings.saga import Saga, SagaContext, begin, handles, instance
from tidings.service import Service
from tidings.transport import connect


class Requested(Event, type="test.saga-begin.requested", version=1):
    ref: str


class Approved(Event, type="test.saga-begin.approved", version=1):
    ref: str


class Approval(Saga, name="approval", begun=True):
    ref: str = ""
    approved: bool = False

    @handles(Approved)
    async def on_approved(self, event: Approved, ctx: SagaContext) -> None:
        self.approved = True
        ctx.finish()


class Aborted(Exception):
    pass


async def begin_then_abort(service: Service) -> None:
    async with service.transaction() as ctx:
        await begin(ctx, Approval(ref="r-2"), correlation="never")
        raise Aborted


async def test_a_begun_saga_takes_its_replies_and_a_rolled_back_one_does_not_exist(
    database_url: str, reliable_broker_url: str
) -> None:
    broker = reliable_broker_url
    service = Service("approvals", broker=broker, database=database_url)
    service.saga(Approval)
    assert Requested.event_type not in service.handled_types  # no self-consumed starting event
    transport = await connect(broker)
    async with service:
        async with service.transaction() as ctx:
            sent = ctx.publish(Requested(ref="r-1"))
            await begin(ctx, Approval(ref="r-1"), correlation=sent.correlationid or sent.id, times_out_in=60)
        correlation = sent.correlationid or sent.id
        with pytest.raises(Aborted):
            await begin_then_abort(service)
        await transport.publish([Envelope.wrap(Approved(ref="r-1"), source="test", correlationid=correlation)])
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with service.store.session() as session:
                found = await instance(session, Approval, correlation)
                never = await instance(session, Approval, "never")
            if found is not None and found[0] == "completed":
                break
            assert asyncio.get_running_loop().time() < deadline, found
            await asyncio.sleep(0.02)
    await transport.close()
    assert found == ("completed", Approval(ref="r-1", approved=True))
    assert never is None
    assert service.stats["retried"] == 0  # the reply never came before its saga


def test_a_saga_without_a_starting_step_must_say_it_is_begun() -> None:
    with pytest.raises(ConfigurationError, match=r"begun=True"):

        class Orphan(Saga, name="orphan"):
            @handles(Approved)
            async def on_approved(self, event: Approved, ctx: SagaContext) -> None: ...
