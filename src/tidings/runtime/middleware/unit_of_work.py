"""Run the rest of the chain in one unit of work: business rows, inbox claim and outbox rows
commit together, or none of them does. The unit of work may be a share of a group commit; if that
batch was rolled back (a neighbour failed), the rest of the chain runs again, alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tidings.context import Context
from tidings.runtime.group_commit import Rerun
from tidings.runtime.pipeline import Handle, Message, Outcome
from tidings.runtime.unit_of_work import UnitOfWork


def with_unit_of_work(unit: UnitOfWork) -> Callable[[Handle], Handle]:
    """Open the unit of work for the delivery and hand its context to the inner chain; an
    exception rolls it back and propagates (to `with_retry`)."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            def work(context: Context) -> Awaitable[Outcome]:
                message.context = context
                return next_(message)

            try:
                return await unit.run(message.envelope, message.attempt, work)
            except Rerun:
                pass  # nothing of the batch committed: the delivery's work runs again, alone
            return await unit.run(message.envelope, message.attempt, work, alone=True)

        return handle

    return middleware
