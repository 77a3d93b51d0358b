"""A delivery's journey through a service: decode → middleware → handler → settle.

A middleware is a plain function from a `Handle` to a `Handle`; `compose` chains them in the one
visible place that says in which order they wrap the handler (`Service` does it when it starts)::

    handle = compose(with_tracing(...), with_metrics(...), with_settlement(...), with_retry(...),
                     with_unit_of_work(...), with_inbox(...))(route(routes))

Every `Handle` returns an `Outcome` rather than raising, except for what no middleware can decide
(the broker gone while settling): `Pipeline.process` logs that and the delivery comes back after
its lease. Settlement is done once, by `with_settlement`, from the outcome the inner chain returned.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import MalformedMessage
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.runtime.routing import HandledElsewhere, Routes
from tidings.transport.base import Delivery

log = logging.getLogger("tidings.service")

MALFORMED = "(malformed)"
"""The `type` label of deliveries that could not be decoded into a routed event."""

Kind = Literal["handled", "duplicate", "retried", "dead_lettered"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a delivery: how to settle it, and the error that decided it, if any."""

    kind: Kind
    delay: float = 0.0
    """`retried`: seconds before the next attempt."""
    reason: str = ""
    """`dead_lettered`: why, as stored with the dead letter."""
    error: BaseException | None = None


HANDOVER = RetryPolicy(max_attempts=30, base=1.0, factor=1.5, max_delay=60.0)
"""The default `Service(handover=...)`: about a quarter of an hour of handing a delivery back to
its group (a rolling deploy's window), then a dead letter."""

HANDLED = Outcome("handled")
DUPLICATE = Outcome("duplicate")


class Message:
    """One delivery on its way through the chain; middleware fill in what they own (`context`)."""

    __slots__ = ("attempt", "context", "delivery", "envelope", "event", "malformed")

    def __init__(
        self,
        delivery: Delivery,
        envelope: Envelope | None,
        event: Event | None,
        malformed: Exception | None = None,
    ) -> None:
        self.delivery = delivery
        self.envelope = envelope
        self.event = event
        self.malformed = malformed
        self.attempt = delivery.attempt
        self.context: Context | None = None


Handle = Callable[[Message], Awaitable[Outcome]]
Middleware = Callable[[Handle], Handle]


def compose(*middleware: Middleware) -> Callable[[Handle], Handle]:
    """Chain middleware, the first one outermost: `compose(a, b)(h)` is `a(b(h))`."""

    def wrap(handle: Handle) -> Handle:
        for layer in reversed(middleware):
            handle = layer(handle)
        return handle

    return wrap


def route(routes: Routes) -> Handle:
    """The innermost `Handle`: run the routed handler with the unit of work's context."""

    async def handle(message: Message) -> Outcome:
        assert message.envelope is not None  # decoded; in a unit of work
        assert message.context is not None
        await routes.handler(message.envelope.type)(message.event, message.context)
        return HANDLED

    return handle


def reject(policy: RetryPolicy) -> Handle:
    """The `Handle` of a delivery that did not decode. A `MalformedMessage` is dead-lettered at once
    with its reason. Anything else is a bug in decoding code (an upcaster): not the message's
    fault, so it is retried by `policy` like a handler's error (a fixed deploy may read it), then
    dead-lettered naming only the error's class (its text may quote the payload)."""

    async def handle(message: Message) -> Outcome:
        error = message.malformed
        assert error is not None
        if isinstance(error, MalformedMessage):
            return Outcome("dead_lettered", reason=str(error), error=error)
        if policy.should_retry(error, message.attempt):
            return Outcome("retried", delay=policy.delay(message.attempt), error=error)
        reason = f"gave up after {message.attempt} attempts: decoding raised {type(error).__name__}"
        return Outcome("dead_lettered", reason=reason, error=error)

    return handle


def hand_over(group: str, policy: RetryPolicy) -> Handle:
    """The `Handle` of a delivery another member of the group may handle (`HandledElsewhere`):
    give it back to the group after `policy.delay(attempt)`, so that a member that knows it takes
    it, for as long as `policy` allows (a rolling deploy's window); then dead-letter it."""

    async def handle(message: Message) -> Outcome:
        error = message.malformed
        assert error is not None
        if message.attempt < policy.max_attempts:
            return Outcome("retried", delay=policy.delay(message.attempt), error=error)
        reason = f"unknown-type: {error}; no member of group {group!r} took it in {message.attempt} attempts"
        return Outcome("dead_lettered", reason=reason, error=error)

    return handle


class Pipeline:
    """Decodes each delivery and runs it through `handle`, or `malformed` when decoding raised, or
    `elsewhere` when another member of the group may handle it."""

    def __init__(
        self, owner: str, routes: Routes, handle: Handle, malformed: Handle, elsewhere: Handle, *, shared: bool
    ) -> None:
        self.owner = owner
        self._routes = routes
        self._handle = handle
        self._malformed = malformed
        self._elsewhere = elsewhere
        self._shared = shared

    async def process(self, delivery: Delivery) -> None:
        """Take one delivery to its settlement; never raises (an unsettled delivery comes back)."""
        try:
            try:
                envelope, event = self._routes.decode(delivery, members_share_types=self._shared)
            except HandledElsewhere as elsewhere:
                await self._elsewhere(Message(delivery, None, None, elsewhere))
                return
            except MalformedMessage as malformed:
                await self._malformed(Message(delivery, None, None, malformed))
                return
            except Exception as error:  # user code (an upcaster) broke: retried, then dead-lettered
                await self._malformed(Message(delivery, None, None, error))
                return
            await self._handle(Message(delivery, envelope, event))
        except Exception:
            log.exception("%s could not settle a delivery; it will be redelivered", self.owner)
