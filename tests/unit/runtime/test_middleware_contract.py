"""The settlement and retry middleware as pure logic: which settlement each outcome gets, with what
delay or reason, how it is counted, and how a handler's error becomes a retry or a dead letter.
The delivery is a stand-in that records how it was settled."""

from __future__ import annotations

from collections import Counter
from typing import cast

import pytest

from tidings.envelope import Envelope
from tidings.errors import PermanentError
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.runtime.middleware.retry import with_retry
from tidings.runtime.middleware.settlement import with_settlement
from tidings.runtime.pipeline import Handle, Message, Outcome
from tidings.transport.base import Delivery


class Paid(Event, type="test.middleware.paid", version=1):
    order_id: str


class Recording:
    """A delivery reduced to its attempt number and the settlements it was asked for."""

    def __init__(self, attempt: int = 1) -> None:
        self.attempt = attempt
        self.settled: list[tuple[str, object]] = []

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def retry(self, delay: float) -> None:
        self.settled.append(("retry", delay))

    async def dead_letter(self, reason: str) -> None:
        self.settled.append(("dead_letter", reason))


def message(attempt: int = 1) -> tuple[Message, Recording]:
    delivery = Recording(attempt)
    event = Paid(order_id="o-1")
    return Message(cast(Delivery, delivery), Envelope.wrap(event, source="test"), event), delivery


def returning(outcome: Outcome) -> Handle:
    async def handle(message: Message) -> Outcome:
        return outcome

    return handle


def raising(error: Exception) -> Handle:
    async def handle(message: Message) -> Outcome:
        raise error

    return handle


@pytest.mark.parametrize(
    ("outcome", "settled", "counted"),
    [
        (Outcome("handled"), ("ack", None), "handled"),
        (Outcome("duplicate"), ("ack", None), "duplicates"),
        (Outcome("retried", delay=2.5), ("retry", 2.5), "retried"),
        (Outcome("dead_lettered", reason="bad order"), ("dead_letter", "bad order"), "dead_lettered"),
    ],
)
async def test_each_outcome_is_settled_once_as_it_says_and_counted(
    outcome: Outcome, settled: tuple[str, object], counted: str
) -> None:
    stats: Counter[str] = Counter()
    incoming, delivery = message()
    returned = await with_settlement("orders", stats)(returning(outcome))(incoming)
    assert returned is outcome
    assert delivery.settled == [settled]
    assert stats == Counter({counted: 1})


async def test_a_transient_error_is_retried_after_the_policys_delay_for_that_attempt() -> None:
    policy = RetryPolicy(max_attempts=5, base=0.5, factor=2.0, jitter=0.0)
    error = RuntimeError("database away")
    incoming, _ = message(attempt=3)
    outcome = await with_retry("orders", policy)(raising(error))(incoming)
    assert outcome.kind == "retried"
    assert outcome.delay == policy.delay(3) == 2.0
    assert outcome.error is error


async def test_the_last_attempt_dead_letters_saying_after_how_many_and_what_failed() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=0.0)
    incoming, _ = message(attempt=3)
    outcome = await with_retry("orders", policy)(raising(RuntimeError("database away")))(incoming)
    assert outcome.kind == "dead_lettered"
    assert outcome.reason == "gave up after 3 attempts: RuntimeError: database away"


async def test_a_permanent_error_dead_letters_at_once_with_its_class_and_text() -> None:
    policy = RetryPolicy(max_attempts=5)
    incoming, _ = message(attempt=1)
    error = PermanentError("no such product")
    outcome = await with_retry("orders", policy)(raising(error))(incoming)
    assert outcome.kind == "dead_lettered"
    assert outcome.reason == "PermanentError: no such product"
    assert outcome.error is error


async def test_an_outcome_the_handler_returned_passes_through_the_retry_middleware() -> None:
    incoming, _ = message()
    outcome = Outcome("duplicate")
    assert await with_retry("orders", RetryPolicy())(returning(outcome))(incoming) is outcome
