"""The idempotent consumer: claim the event (source and id) inside the unit of work, skip what was handled."""

from __future__ import annotations

from collections.abc import Callable

from tidings.runtime import group_commit
from tidings.runtime.pipeline import DUPLICATE, Handle, Message, Outcome


def with_inbox(group: str) -> Callable[[Handle], Handle]:
    """Must run inside `with_unit_of_work` (it needs the transaction): the claim commits with the
    handler's rows, so a redelivered event whose (source, id) is claimed is acked without running again.
    In a group commit the batch's claims are made together (`group_commit.claim`)."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            assert message.context is not None
            assert message.envelope is not None
            envelope = message.envelope
            if not await group_commit.claim(message.context.connection, group, envelope.source, envelope.id):
                return DUPLICATE
            return await next_(message)

        return handle

    return middleware
