"""Publishing one batch of outbox rows, setting aside the envelopes the broker refuses for good.

`transport.publish(batch)` either returns (the broker confirmed every envelope) or raises. Most
errors are transient (broker down, connection lost, a timeout) and say nothing about which
envelopes arrived: the relay keeps the whole batch and tries it again later. `EnvelopeRefused`
is different: the broker refused one envelope for good, and says which. `send` then sets that
row aside and publishes the rest of the batch again, at once, so one poison row never holds back
the rows behind it. The envelopes before the refused one may have been accepted already; they
are published again (at-least-once, absorbed by consumers' inboxes), in the same order.

One `time_limit` (seconds) bounds the whole call, however many refusals it meets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidings.errors import EnvelopeRefused, PublishError
from tidings.observe import Telemetry
from tidings.store.outbox import Batch, OutboxRow
from tidings.transport.base import Transport


@dataclass(slots=True)
class Sent:
    """What became of a batch."""

    published: list[OutboxRow] = field(default_factory=list)
    """Rows the broker confirmed; empty if `failure` is set."""
    refused: list[tuple[OutboxRow, str]] = field(default_factory=list)
    """Rows the broker refused for good, with the reason: to be parked."""
    confirmed_at: float = 0.0
    """Unix seconds of the broker's confirmation."""
    failure: Exception | None = None
    """A transient failure: the rows not refused stay in the outbox for the next attempt."""


async def send(transport: Transport, rows: Sequence[OutboxRow], *, telemetry: Telemetry, time_limit: float) -> Sent:
    """Publish `rows` in order, setting aside every envelope the broker refuses for good (see the
    module docstring). Never raises but for cancellation: a transient failure is in `failure`.
    No rows: nothing is published, `published` is empty and `confirmed_at` is now."""
    sent = Sent()
    remaining = list(rows)
    try:
        async with asyncio.timeout(time_limit):
            while remaining:
                envelopes = [row.envelope for row in remaining]
                try:
                    with telemetry.sending(envelopes):
                        await transport.publish(envelopes)
                except EnvelopeRefused as refusal:
                    index = next((i for i, e in enumerate(envelopes) if e.id == refusal.envelope_id), None)
                    if index is None:
                        raise PublishError(
                            f"the broker refused envelope {refusal.envelope_id}, not in the batch"
                        ) from refusal
                    sent.refused.append((remaining.pop(index), f"refused by the broker: {refusal.reason}"))
                    continue
                break
    except Exception as error:  # transient: PublishError, TimeoutError, a lost connection, ...
        sent.failure = error
        return sent
    sent.published = remaining
    sent.confirmed_at = time.time()
    return sent


def to_park(batch: Batch, sent: Sent) -> list[tuple[int, str]]:
    """The rows of a cycle to park, as (id, reason): those that do not decode, then those refused."""
    return [*batch.undecodable, *((row.id, reason) for row, reason in sent.refused)]
