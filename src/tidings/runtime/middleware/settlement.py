"""Settle each delivery exactly once, from the `Outcome` the inner chain returned."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from tidings.runtime.pipeline import Handle, Message, Outcome

log = logging.getLogger("tidings.service")

_COUNTED = {"handled": "handled", "duplicate": "duplicates", "retried": "retried", "dead_lettered": "dead_lettered"}


def with_settlement(owner: str, stats: Counter[str]) -> Callable[[Handle], Handle]:
    """Ack what was handled (or was a duplicate), retry after the outcome's delay, dead-letter with
    its reason; count each in `stats`. A settlement that fails raises (the broker is gone): the
    delivery is then redelivered after its lease."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            outcome = await next_(message)
            delivery = message.delivery
            if outcome.kind == "handled" or outcome.kind == "duplicate":
                await delivery.ack()
                if log.isEnabledFor(logging.DEBUG) and message.envelope is not None:
                    log.debug("%s %s %s %s", owner, outcome.kind, message.envelope.type, message.envelope.id)
            elif outcome.kind == "retried":
                await delivery.retry(outcome.delay)
            else:
                log.error("%s dead-lettered a delivery: %s", owner, outcome.reason)
                await delivery.dead_letter(outcome.reason)
            stats[_COUNTED[outcome.kind]] += 1
            return outcome

        return handle

    return middleware
